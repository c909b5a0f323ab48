package task

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sirupsen/logrus"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/policy"
)

// MaxCommandLength is the longest command a task may run, in characters.
const MaxCommandLength = 2000

// errSecretInCommand refuses a command that holds a secret's value: it
// would be kept, posted and run with the secret in plain text.
var errSecretInCommand = taskbot.Errorf(taskbot.EForbidden,
	"Your command contains the value of a secret taskbot keeps (a stack's secret or a token), "+
		"so nothing was run. Refer to a stack's secret by its environment variable instead "+
		"(e.g. `$DB_PASSWORD`).")

// request takes a /task command from its arrival to its end: checks, then
// either a run or a wait for approval. Requests for unknown stacks are
// recorded too: the audit log shows every attempt. What the user typed is
// masked before it is kept anywhere.
func (s *Service) request(ctx context.Context, req Request) error {
	t := &taskbot.Task{
		Stack:    s.Masker.String(req.Command.Stack),
		User:     req.User,
		Channel:  req.Channel,
		Command:  s.Masker.String(req.Command.Text),
		SkipInit: req.Command.SkipInit,
		State:    taskbot.StatePending,
	}
	if err := s.Store.CreateTask(ctx, t); err != nil {
		return fmt.Errorf("create task: %w", err)
	}
	if err := s.audit(ctx, t, req.User, taskbot.EventRequested,
		"command", t.Command,
		"skip_init", strconv.FormatBool(t.SkipInit),
		"channel", t.Channel); err != nil {
		return s.abandon(ctx, t, err)
	}

	st, err := s.stack(t.Stack)
	if err != nil {
		return s.refuse(ctx, t, err)
	}
	if err := s.requireWriter(ctx, st, t.User, "run tasks on it"); err != nil {
		return s.refuse(ctx, t, err)
	}
	// Only now, so that no one but a writer, who has the secrets anyway,
	// can learn from the answer whether a guess was a secret's value.
	if t.Command != req.Command.Text {
		return s.refuse(ctx, t, errSecretInCommand)
	}
	reasons, err := s.check(ctx, st, t)
	if err != nil {
		return s.refuse(ctx, t, err)
	}
	if len(reasons) > 0 {
		return s.awaitApproval(ctx, t, reasons)
	}
	return s.start(ctx, st, t, nil)
}

// check runs the checks a writer's task must pass before it may run, in
// order: its length, the task policy, no one else's lock. It returns the
// reasons the task needs approval, if any.
func (s *Service) check(ctx context.Context, st *taskbot.Stack, t *taskbot.Task) ([]string, error) {
	if n := utf8.RuneCountInString(t.Command); n > MaxCommandLength {
		return nil, taskbot.Errorf(taskbot.EInvalid,
			"Your command has %d characters; taskbot takes at most %d, so that approvers can read all of it. "+
				"Put longer scripts in the stack's image.", n, MaxCommandLength)
	}

	reasons, err := s.decide(ctx, st, t)
	if err != nil {
		return nil, err
	}

	if err := s.checkManualLock(ctx, st, t.User); err != nil {
		return nil, err
	}
	return reasons, nil
}

// decide evaluates the task policy and audits the decision. A policy that
// fails denies.
func (s *Service) decide(ctx context.Context, st *taskbot.Stack, t *taskbot.Task) ([]string, error) {
	in := policy.Input{
		Stack:    policy.StackInput{Name: st.Name, Labels: st.Labels},
		Command:  t.Command,
		SkipInit: t.SkipInit,
		User:     policy.UserInput{ID: t.User, Groups: s.userGroups(ctx, t.User)},
		Channel:  policy.ChannelInput{ID: t.Channel},
	}
	d, evalErr := s.Policy.Evaluate(ctx, in)
	if evalErr != nil {
		s.logTask(t).WithError(evalErr).Error("policy evaluation failed; denying")
	}

	decision := "allow"
	reasons := d.RequireApproval
	switch {
	case evalErr != nil || !d.Allowed():
		decision, reasons = "deny", d.Deny
	case len(d.RequireApproval) > 0:
		decision = "require_approval"
	}
	if err := s.audit(ctx, t, t.User, taskbot.EventDecided,
		"decision", decision, "reasons", strings.Join(reasons, "; ")); err != nil {
		return nil, err
	}

	if decision == "deny" {
		return nil, taskbot.Errorf(taskbot.EDenied,
			"A policy denied this task:\n%s", bullets(d.Deny))
	}
	return d.RequireApproval, nil
}

// checkManualLock refuses early when someone else holds the stack with
// /lock. Taking the lease checks again, atomically; this check only spares
// the requester a pointless wait for approval.
func (s *Service) checkManualLock(ctx context.Context, st *taskbot.Stack, user string) error {
	l, err := s.Store.LockOf(ctx, st.Name)
	if err != nil {
		return fmt.Errorf("read lock of %s: %w", st.Name, err)
	}
	if l != nil && l.User != user {
		return lockedError(*l)
	}
	return nil
}

// lockedError turns a lock held by someone else into a message for the
// requester.
func lockedError(l taskbot.Lock) error {
	if l.Kind == taskbot.LockTask {
		return taskbot.Errorf(taskbot.EConflict,
			"Stack *%s* is busy: task %s by <@%s> is running. Try again when it has finished.",
			l.Stack, l.TaskID, l.User)
	}
	msg := fmt.Sprintf("Stack *%s* is locked by <@%s>", l.Stack, l.User)
	msg += reasonSuffix(l.Reason)
	return taskbot.Errorf(taskbot.EConflict, "%s. Only they can run tasks on it until they `/unlock %s`.",
		msg, l.Stack)
}

// refuse records why a task will not run and returns the reason for the
// requester. Refused tasks were never posted, so the requester alone sees it.
func (s *Service) refuse(ctx context.Context, t *taskbot.Task, cause error) error {
	var locked *taskbot.LockedError
	if errors.As(cause, &locked) {
		cause = lockedError(locked.Lock)
	}

	reason := "internal error"
	if uerr := (*taskbot.Error)(nil); errors.As(cause, &uerr) {
		reason = uerr.Message
	}
	fresh, cancel := freshContext(ctx)
	defer cancel()
	if err := s.Store.FinishTask(fresh, t.ID, taskbot.StateRefused, 0, s.Masker.String(reason)); err != nil {
		s.logTask(t).WithError(err).Error("recording refused task failed")
	}
	// Logged here: joined to cause, it would be dropped when cause is shown
	// to the requester.
	if err := s.audit(fresh, t, t.User, taskbot.EventRefused, "reason", reason); err != nil {
		s.logTask(t).WithError(err).Error("auditing the refusal failed")
	}
	return cause
}

// abandon marks a task failed, in the store and the audit log, when taskbot
// itself could not go on, e.g. because the audit log could not be written.
func (s *Service) abandon(ctx context.Context, t *taskbot.Task, cause error) error {
	if err := s.finish(ctx, t, taskbot.StateFailed, 0, "internal error"); err != nil {
		s.logTask(t).WithError(err).Error("recording abandoned task failed")
	}
	return cause
}

func (s *Service) logTask(t *taskbot.Task) logrus.FieldLogger {
	return s.Log.WithFields(logrus.Fields{"task_id": t.ID, "stack": t.Stack, "user": t.User})
}

// bullets lists lines, escaped: policies may quote what people typed.
func bullets(lines []string) string {
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString("• " + escape(l))
	}
	return b.String()
}
