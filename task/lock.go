package task

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/taskbot/taskbot"
)

// MaxReasonLength is the longest reason a lock may give, in characters: it
// is shown in every refusal of a task on the stack.
const MaxReasonLength = 300

// lock takes a manual lock on a stack for the requester. Only writers may
// lock a stack: a lock keeps everyone else's tasks off it.
func (s *Service) lock(ctx context.Context, req Request) (Reply, error) {
	st, err := s.writableStack(ctx, req)
	if err != nil {
		return Reply{}, err
	}
	reason := req.Command.Text
	if s.Masker.Contains(reason) {
		return Reply{}, taskbot.Errorf(taskbot.EInvalid, "Your reason contains a secret value; write it without.")
	}
	if n := utf8.RuneCountInString(reason); n > MaxReasonLength {
		return Reply{}, taskbot.Errorf(taskbot.EInvalid,
			"Your reason has %d characters; keep it to %d, and link to the details.", n, MaxReasonLength)
	}

	prev, err := s.Store.LockOf(ctx, st.Name)
	if err != nil {
		return Reply{}, fmt.Errorf("read lock of %s: %w", st.Name, err)
	}
	if reason == "" && prev != nil && prev.User == req.User {
		reason = prev.Reason // locking again without a reason keeps the one given
	}
	l, err := s.Store.Lock(ctx, st.Name, req.User, reason)
	var locked *taskbot.LockedError
	if errors.As(err, &locked) {
		return Reply{}, lockedError(locked.Lock)
	}
	if err != nil {
		return Reply{}, fmt.Errorf("lock %s: %w", st.Name, err)
	}

	ref := &taskbot.Task{Stack: st.Name}
	if err := s.audit(ctx, ref, req.User, taskbot.EventStackLocked, "reason", reason); err != nil {
		return Reply{}, errors.Join(err, s.undoLock(ctx, st.Name, req.User, prev))
	}
	return Reply{Public: true, Text: fmt.Sprintf(":lock: <@%s> locked stack *%s*%s. Only they can run tasks on it until `/unlock %s`.",
		l.User, l.Stack, reasonSuffix(l.Reason), l.Stack)}, nil
}

// undoLock takes back a lock whose audit entry could not be written: a lock
// nobody can account for must not stand. prev is the requester's own lock
// from before, whose reason is restored, or nil.
func (s *Service) undoLock(ctx context.Context, stack, user string, prev *taskbot.Lock) error {
	fresh, cancel := freshContext(ctx)
	defer cancel()
	var err error
	if prev != nil && prev.User == user {
		_, err = s.Store.Lock(fresh, stack, user, prev.Reason)
	} else {
		_, err = s.Store.Unlock(fresh, stack, user)
	}
	if err != nil {
		return fmt.Errorf("undo lock of %s: %w", stack, err)
	}
	return nil
}

// unlock releases the requester's manual lock.
func (s *Service) unlock(ctx context.Context, req Request) (Reply, error) {
	st, err := s.stack(req.Command.Stack)
	if err != nil {
		return Reply{}, err
	}
	l, err := s.Store.Unlock(ctx, st.Name, req.User)
	var locked *taskbot.LockedError
	switch {
	case errors.Is(err, taskbot.ErrNotLocked):
		return Reply{}, taskbot.Errorf(taskbot.EConflict, "Stack *%s* is not locked.", st.Name)
	case errors.As(err, &locked):
		return Reply{}, taskbot.Errorf(taskbot.EForbidden,
			"Stack *%s* is locked by <@%s>; only they can unlock it.", st.Name, locked.Lock.User)
	case err != nil:
		return Reply{}, fmt.Errorf("unlock %s: %w", st.Name, err)
	}

	ref := &taskbot.Task{Stack: st.Name}
	if err := s.audit(ctx, ref, req.User, taskbot.EventStackUnlocked); err != nil {
		return Reply{}, errors.Join(err, s.undoUnlock(ctx, l))
	}
	return Reply{Public: true, Text: fmt.Sprintf(":unlock: <@%s> unlocked stack *%s*.", l.User, l.Stack)}, nil
}

// undoUnlock puts back, as it was, a lock whose removal could not be
// audited, so that the store agrees with the audit log, which still shows
// the stack locked. Auditing first instead would leave a stack_unlocked
// event behind whenever the unlock itself then failed.
func (s *Service) undoUnlock(ctx context.Context, l taskbot.Lock) error {
	fresh, cancel := freshContext(ctx)
	defer cancel()
	if err := s.Store.RestoreLock(fresh, l); err != nil {
		return fmt.Errorf("undo unlock of %s: %w", l.Stack, err)
	}
	return nil
}

// listLocks shows every manual lock and running task.
func (s *Service) listLocks(ctx context.Context) (Reply, error) {
	locks, err := s.Store.Locks(ctx)
	if err != nil {
		return Reply{}, fmt.Errorf("list locks: %w", err)
	}
	if len(locks) == 0 {
		return Reply{Text: "No stack is locked and no task is running."}, nil
	}
	var b strings.Builder
	for _, l := range locks {
		since := l.Since.UTC().Format("2006-01-02 15:04 MST")
		if l.Kind == taskbot.LockTask {
			fmt.Fprintf(&b, "• *%s*: task %s by <@%s> running since %s\n", l.Stack, l.TaskID, l.User, since)
			continue
		}
		fmt.Fprintf(&b, "• *%s*: locked by <@%s> since %s%s\n", l.Stack, l.User, since, reasonSuffix(l.Reason))
	}
	return Reply{Text: strings.TrimSuffix(b.String(), "\n")}, nil
}

// writableStack returns the request's stack if the requester is its writer.
func (s *Service) writableStack(ctx context.Context, req Request) (*taskbot.Stack, error) {
	st, err := s.stack(req.Command.Stack)
	if err != nil {
		return nil, err
	}
	if err := s.requireWriter(ctx, st, req.User, "lock it"); err != nil {
		return nil, err
	}
	return st, nil
}

// reasonSuffix shows a lock's reason after a colon, escaped: people wrote it.
func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + escape(reason)
}
