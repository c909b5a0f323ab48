package task

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/taskbot/taskbot"
)

// approvalsNeeded is how many approvals a task needs under the default rule.
const approvalsNeeded = 1

// Reaction is an emoji reaction added to a message.
type Reaction struct {
	User    string
	Channel string
	TS      string // the message reacted to
	Emoji   string // without colons
}

// React counts a reaction as an approval when it is the approval emoji, on
// a task awaiting approval, by a writer of its stack other than the
// requester. Enough approvals start the task; React then returns when it has
// finished. Reactions that are not approvals at all are ignored silently.
func (s *Service) React(ctx context.Context, r Reaction) error {
	if r.Emoji != s.Emoji {
		return nil
	}
	id, err := s.taskOfMessage(ctx, r.Channel, r.TS)
	if errors.Is(err, taskbot.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	t, err := s.Store.Task(ctx, id)
	if err != nil {
		return fmt.Errorf("read task %s: %w", id, err)
	}
	if t.State != taskbot.StateAwaitingApproval {
		return nil
	}
	st, ok := s.Stacks[t.Stack]
	if !ok {
		return fmt.Errorf("task %s names unknown stack %q", t.ID, t.Stack)
	}
	if time.Since(t.Created) > s.approvalTimeout() {
		return s.expire(ctx, t)
	}
	return s.approve(ctx, st, t, r.User)
}

// expire refuses a task that waited for approval too long: what was asked
// for then may no longer be wanted now.
func (s *Service) expire(ctx context.Context, t *taskbot.Task) error {
	won, err := s.Store.TransitionTask(ctx, t.ID, taskbot.StateAwaitingApproval, taskbot.StatePending)
	if err != nil || !won {
		return err
	}
	cause := taskbot.Errorf(taskbot.EConflict,
		"This task waited more than %s for approval, so it expired. Request it again if it is still wanted.",
		s.approvalTimeout())
	return s.refuseOnMessage(ctx, t, s.refuse(ctx, t, cause), nil)
}

// indexDelays are the waits between looking a reacted-to message up again.
// Slack shows a message, and people can react to it, a moment before the
// replica that posted it has recorded which task it belongs to.
var indexDelays = []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond}

// taskOfMessage returns the ID of the task whose message is ts, giving a
// message that was posted just now time to be recorded.
func (s *Service) taskOfMessage(ctx context.Context, channel, ts string) (string, error) {
	for i := 0; ; i++ {
		id, err := s.Store.TaskIDByMessage(ctx, channel, ts)
		if err == nil || !errors.Is(err, taskbot.ErrNotFound) || i == len(indexDelays) {
			if err != nil {
				err = fmt.Errorf("find task of message %s: %w", ts, err)
			}
			return id, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(indexDelays[i]):
		}
	}
}

// approve counts one user's approval and starts the task once it has enough.
func (s *Service) approve(ctx context.Context, st *taskbot.Stack, t *taskbot.Task, user string) error {
	if reason := s.disqualified(ctx, st, t, user); reason != "" {
		return s.ignoreApproval(ctx, t, user, reason)
	}

	n, err := s.countApproval(ctx, t, user)
	if err != nil {
		return err
	}
	if n < approvalsNeeded {
		return nil
	}

	approvers, err := s.Store.Approvals(ctx, t.ID)
	if err != nil {
		return fmt.Errorf("read approvals: %w", err)
	}

	// Several replicas may count the last approval at once; only the one
	// that moves the task out of awaiting_approval runs it.
	won, err := s.Store.TransitionTask(ctx, t.ID, taskbot.StateAwaitingApproval, taskbot.StatePending)
	if err != nil || !won {
		return err
	}
	t.State = taskbot.StatePending
	v := View{Emoji: s.Emoji, Approvers: approvers}
	return s.startApproved(ctx, st, t, &v)
}

// countApproval records user's approval and audits it, and returns how many
// approvals the task has. An approval that cannot be audited is taken back:
// it must not start the task. One given before (the same approver reacting
// again, say with another skin tone, perhaps through another replica) was
// audited when it was given and is not audited again; it still counts, so
// that a task whose start was cut short can be started by reacting again.
func (s *Service) countApproval(ctx context.Context, t *taskbot.Task, user string) (int, error) {
	n, added, err := s.Store.AddApproval(ctx, t.ID, user)
	if err != nil {
		return 0, fmt.Errorf("add approval: %w", err)
	}
	if !added {
		return n, nil
	}
	if err := s.audit(ctx, t, user, taskbot.EventApprovalCounted, "approver", user,
		"approvals", strconv.Itoa(n), "needed", strconv.Itoa(approvalsNeeded)); err != nil {
		s.notifyApprover(ctx, t, user, fmt.Sprintf("Your :%s: on task %s could not be recorded, so it "+
			"did not count. Remove it and react again.", s.Emoji, t.ID))
		return 0, errors.Join(err, s.withdrawApproval(ctx, t, user))
	}
	return n, nil
}

// withdrawApproval takes back an approval, with a fresh context so that a
// cancelled request still does.
func (s *Service) withdrawApproval(ctx context.Context, t *taskbot.Task, user string) error {
	fresh, cancel := freshContext(ctx)
	defer cancel()
	if err := s.Store.RemoveApproval(fresh, t.ID, user); err != nil {
		return fmt.Errorf("withdraw approval: %w", err)
	}
	return nil
}

// ignoreApproval audits an approval that did not count and tells its giver
// why, so that nobody believes they approved a task that still waits.
func (s *Service) ignoreApproval(ctx context.Context, t *taskbot.Task, user, reason string) error {
	if err := s.audit(ctx, t, user, taskbot.EventApprovalIgnored, "approver", user, "reason", reason); err != nil {
		return err
	}
	s.notifyApprover(ctx, t, user, fmt.Sprintf("Your :%s: on task %s did not count as an approval: %s.",
		s.Emoji, t.ID, reason))
	return nil
}

// notifyApprover tells user, and only them, why their reaction did not
// count, so that nobody believes they approved a task that still waits.
func (s *Service) notifyApprover(ctx context.Context, t *taskbot.Task, user, msg string) {
	fresh, cancel := freshContext(ctx)
	defer cancel()
	if err := s.Chat.Notify(fresh, t.Channel, user, msg); err != nil {
		s.logTask(t).WithError(err).Warn("telling the approver why their approval did not count failed")
	}
}

// disqualified returns why user's approval does not count, or "".
func (s *Service) disqualified(ctx context.Context, st *taskbot.Stack, t *taskbot.Task, user string) string {
	if user == t.User {
		return "requesters cannot approve their own tasks"
	}
	if !s.isWriter(ctx, st, user) {
		return fmt.Sprintf("only writers of stack %s can approve its tasks", st.Name)
	}
	return ""
}

// startApproved runs an approved task. The requester, the policy and the
// stack's locks are checked again first: what held when the task was asked
// for may have changed since. A task that fails them is refused on its
// message, where everyone sees it.
func (s *Service) startApproved(ctx context.Context, st *taskbot.Stack, t *taskbot.Task, v *View) error {
	err := s.requireWriter(ctx, st, t.User, "run tasks on it")
	if err == nil {
		_, err = s.check(ctx, st, t)
	}
	if err != nil {
		return s.refuseOnMessage(ctx, t, s.refuse(ctx, t, err), v)
	}

	err = s.start(ctx, st, t, v)
	if err == nil || errors.Is(err, errNotPending) || t.State != taskbot.StatePending {
		return err // start showed how it went, or whoever moved the task on does
	}
	return s.refuseOnMessage(ctx, t, err, v) // it could not take the stack
}

// refuseOnMessage shows a refusal of an already posted task on its message.
// err is why it was refused. A task that taskbot itself failed to check or
// start is shown refused too, so that its message does not go on saying it
// waits; that error is returned, to be logged.
func (s *Service) refuseOnMessage(ctx context.Context, t *taskbot.Task, err error, v *View) error {
	msg, ok := taskbot.UserMessage(err)
	if !ok {
		msg = "taskbot failed while checking it again (internal error). Ask for it again."
	}
	t.State, t.Detail = taskbot.StateRefused, msg
	fresh, cancel := freshContext(ctx)
	defer cancel()
	showErr := s.show(fresh, t, v)
	if ok {
		return showErr
	}
	return errors.Join(err, showErr)
}

// awaitApproval posts the task's message and leaves the task waiting for
// reactions. Nothing is locked while it waits.
func (s *Service) awaitApproval(ctx context.Context, t *taskbot.Task, reasons []string) error {
	ok, err := s.Store.TransitionTask(ctx, t.ID, taskbot.StatePending, taskbot.StateAwaitingApproval)
	if err != nil || !ok {
		return s.abandon(ctx, t, errors.Join(err, fmt.Errorf("task %s left pending", t.ID)))
	}
	t.State = taskbot.StateAwaitingApproval
	masked := make([]string, len(reasons))
	for i, r := range reasons {
		masked[i] = s.Masker.String(r)
	}
	switch err := s.show(ctx, t, &View{Emoji: s.Emoji, Reasons: masked}); {
	case err == nil:
		return nil
	case isUserError(err):
		return s.refuse(ctx, t, err) // e.g. taskbot was not invited to the channel
	default:
		return s.abandon(ctx, t, err)
	}
}
