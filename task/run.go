package task

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/runner"
)

// errNotPending stops a task that something else moved on while it was
// being started: its state, and what its message shows, are no longer this
// call's to set.
var errNotPending = errors.New("task no longer pending")

// start takes the stack's lease and runs the task. approval is the view of a
// task that was approved and already posted, or nil for a task posted now.
// The lease is given back before the final state is shown, so whoever reads
// "finished" can run the next task on the stack at once.
func (s *Service) start(ctx context.Context, st *taskbot.Stack, t *taskbot.Task, approval *View) error {
	lease, err := s.Store.AcquireLease(ctx, st.Name, t.ID, t.User, s.leaseTTL())
	if err != nil {
		var locked *taskbot.LockedError
		if !errors.As(err, &locked) {
			err = fmt.Errorf("acquire lease on %s: %w", st.Name, err)
		}
		return s.refuse(ctx, t, err)
	}

	err = s.runLeased(ctx, st, t, approval, lease)
	s.release(ctx, t, lease)
	if errors.Is(err, errNotPending) || t.State == taskbot.StateRefused {
		return err // whoever moved the task on shows it, or the requester was told
	}

	fresh, cancel := freshContext(ctx)
	defer cancel()
	return errors.Join(err, s.show(fresh, t, approval))
}

// releaseOnPanic gives the stack back if running its task panicked, so that
// a bug cannot keep a stack busy until a restart, then panics on.
func (s *Service) releaseOnPanic(ctx context.Context, t *taskbot.Task, l taskbot.Lease) {
	if r := recover(); r != nil {
		s.release(ctx, t, l)
		panic(r)
	}
}

// runLeased runs the task while it holds the stack's lease, and records its
// final state in t, the store and the audit log. An error means taskbot
// itself failed; the task is then recorded as failed, unless the error is
// errNotPending, or one the requester can fix that kept its message from
// being posted, when it is refused.
func (s *Service) runLeased(ctx context.Context, st *taskbot.Stack, t *taskbot.Task, approval *View, lease taskbot.Lease) error {
	defer s.releaseOnPanic(ctx, t, lease)
	switch err := s.begin(ctx, st, t, approval, lease); {
	case errors.Is(err, errNotPending):
		return err
	case err != nil && t.MessageTS == "" && isUserError(err):
		// Its message could not be posted for a reason the requester can
		// fix (taskbot was not invited to the channel): nothing ran.
		t.State = taskbot.StateRefused
		return s.refuse(ctx, t, err)
	case err != nil:
		return errors.Join(err, s.finish(ctx, t, taskbot.StateFailed, 0, "taskbot could not start the task"))
	}

	runCtx, stop := context.WithCancelCause(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		s.renew(runCtx, stop, t, lease)
	}()
	// No renewal may outlive the task and race its release, even if the
	// run panics.
	defer func() { stop(nil); <-renewed }()

	res, runErr := s.execute(runCtx, st, t)
	if res.Leftover != nil {
		s.logTask(t).WithError(res.Leftover).Error("removing the task's container failed; the stack's next task removes it")
	}
	cancelled := context.Cause(runCtx)
	stop(nil)

	state, detail := outcome(st, res, runErr, cancelled)
	switch {
	case errors.Is(runErr, runner.ErrImageUnavailable):
		s.logTask(t).WithError(runErr).Warn("task image not available")
	case runErr != nil && cancelled == nil:
		s.logTask(t).WithError(runErr).Error("task run failed")
	}
	return s.finish(ctx, t, state, res.ExitCode, detail)
}

// begin records and shows that the task runs. Each step must succeed before
// the container may start: a task taskbot cannot account for does not run.
func (s *Service) begin(ctx context.Context, st *taskbot.Stack, t *taskbot.Task, approval *View, lease taskbot.Lease) error {
	if err := s.audit(ctx, t, t.User, taskbot.EventLockAcquired,
		"kind", string(taskbot.LockTask), "token", strconv.FormatInt(lease.Token, 10)); err != nil {
		return err
	}
	// Holding the lease, any other container of the stack is an orphan of
	// a replica that stopped: it must not run alongside this task.
	if err := s.reap(ctx, func(c runner.Container) bool { return c.Stack == st.Name && c.TaskID != t.ID }); err != nil {
		return err
	}
	won, err := s.Store.TransitionTask(ctx, t.ID, taskbot.StatePending, taskbot.StateRunning)
	if err != nil {
		return fmt.Errorf("mark task running: %w", err)
	}
	if !won {
		return fmt.Errorf("mark task %s running: %w", t.ID, errNotPending)
	}
	t.State = taskbot.StateRunning
	if err := s.show(ctx, t, approval); err != nil {
		return err
	}
	return s.audit(ctx, t, t.User, taskbot.EventStarted, "image", st.Image)
}

// show posts the task's message, or updates it when it was posted earlier
// for approval.
func (s *Service) show(ctx context.Context, t *taskbot.Task, approval *View) error {
	v := s.view(*t, approval)
	if t.MessageTS != "" {
		return s.Chat.UpdateTask(ctx, v)
	}
	ts, err := s.Chat.PostTask(ctx, v)
	if err != nil {
		return fmt.Errorf("post task message: %w", err)
	}
	t.MessageTS = ts
	if err := s.Store.SetTaskMessage(ctx, t.ID, ts); err != nil {
		return fmt.Errorf("record task message: %w", err)
	}
	return nil
}

// view returns what the task's message shows, masked.
func (s *Service) view(t taskbot.Task, approval *View) View {
	v := View{Emoji: s.Emoji}
	if approval != nil {
		v = *approval
	}
	t.Command = s.Masker.String(t.Command)
	t.Detail = s.Masker.String(t.Detail)
	v.Task = t
	return v
}

// execute runs the task's container, streaming its masked output.
func (s *Service) execute(ctx context.Context, st *taskbot.Stack, t *taskbot.Task) (runner.Result, error) {
	out, err := s.Chat.OpenOutput(ctx, *t)
	if err != nil {
		return runner.Result{}, fmt.Errorf("open output: %w", err)
	}
	stdout, stderr := s.Masker.Writer(out), s.Masker.Writer(out)

	res, runErr := s.Runner.Run(ctx, s.job(st, t), stdout, stderr)

	// The last output may wait out Slack's rate limits; the final state is
	// shown only after it, so that output never trails the status.
	closing, cancel := context.WithTimeout(context.WithoutCancel(ctx), outputCloseTimeout)
	defer cancel()
	err = errors.Join(stdout.Flush(), stderr.Flush(), out.Close(closing))
	if err != nil {
		s.logTask(t).WithError(err).Error("sending task output failed")
	}
	return res, runErr
}

// job is what the runner gets for t: the stack's image, init, workdir,
// timeout, environment and secrets, labelled with the deployment.
func (s *Service) job(st *taskbot.Stack, t *taskbot.Task) runner.Job {
	j := runner.Job{
		TaskID:  t.ID,
		Stack:   st.Name,
		Owner:   s.Owner,
		Image:   st.Image,
		Command: t.Command,
		Workdir: st.Workdir,
		Timeout: st.Timeout,
	}
	if !t.SkipInit {
		j.Init = st.Init
	}
	for k, v := range st.Env {
		j.Env = append(j.Env, k+"="+v)
	}
	for k, v := range st.Secrets {
		j.Env = append(j.Env, k+"="+v.Reveal())
	}
	sort.Strings(j.Env)
	return j
}

// outcome turns what the runner returned into the task's final state;
// cancelled is why the run's context ended early, if it did.
func outcome(st *taskbot.Stack, res runner.Result, err, cancelled error) (taskbot.State, string) {
	switch {
	case errors.Is(err, runner.ErrImageUnavailable):
		return taskbot.StateFailed, fmt.Sprintf("image %s is not available", st.Image)
	case err != nil && errors.Is(cancelled, taskbot.ErrLeaseLost):
		return taskbot.StateFailed, "stopped: the stack's lease was lost, so another task may hold it"
	case err != nil && cancelled != nil:
		return taskbot.StateFailed, "cancelled before it finished (taskbot was stopped)"
	case err != nil:
		return taskbot.StateFailed, "taskbot could not run the container"
	case res.TimedOut:
		return taskbot.StateFailed, fmt.Sprintf("timed out after %s", st.Timeout)
	case res.ExitCode == 0:
		return taskbot.StateFinished, ""
	case res.Phase == runner.PhaseInit:
		return taskbot.StateFailed, "the init phase failed"
	}
	return taskbot.StateFailed, ""
}

// finish records the task's final state and audits it. A failed task's
// exit code 0 means it has none: it failed before its container exited, and
// its audited exit_code is empty, so that nobody reads it as success.
func (s *Service) finish(ctx context.Context, t *taskbot.Task, state taskbot.State, code int, detail string) error {
	fresh, cancel := freshContext(ctx)
	defer cancel()

	t.State, t.ExitCode, t.Detail = state, code, detail
	var errs []error
	if err := s.Store.FinishTask(fresh, t.ID, state, code, s.Masker.String(detail)); err != nil {
		errs = append(errs, fmt.Errorf("record final state: %w", err))
	}

	typ, fields := taskbot.EventFinished, []string{"exit_code", strconv.Itoa(code)}
	if state != taskbot.StateFinished {
		typ = taskbot.EventFailed
		if code == 0 {
			fields[1] = ""
		}
		fields = append(fields, "reason", detail)
	}
	if err := s.audit(fresh, t, t.User, typ, fields...); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// release gives the stack back, with a fresh context so that a cancelled
// request still frees it.
func (s *Service) release(ctx context.Context, t *taskbot.Task, l taskbot.Lease) {
	fresh, cancel := freshContext(ctx)
	defer cancel()
	if err := s.Store.ReleaseLease(fresh, l); err != nil {
		s.logTask(t).WithError(err).Error("releasing the stack's lease failed")
		return
	}
	err := s.audit(fresh, t, t.User, taskbot.EventLockReleased,
		"kind", string(taskbot.LockTask), "token", strconv.FormatInt(l.Token, 10))
	if err != nil {
		s.logTask(t).WithError(err).Error("auditing the lease release failed")
	}
}

// renew keeps the lease alive while the task runs. If the lease is lost, the
// stack may already run someone else's task, so this one is stopped.
func (s *Service) renew(ctx context.Context, stop context.CancelCauseFunc, t *taskbot.Task, l taskbot.Lease) {
	tick := time.NewTicker(s.leaseTTL() / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		err := s.Store.RenewLease(ctx, l, s.leaseTTL())
		switch {
		case err == nil, ctx.Err() != nil:
		case errors.Is(err, taskbot.ErrLeaseLost):
			s.logTask(t).Error("stack lease lost; stopping the task")
			stop(err)
			return
		default:
			// A transient Redis error: the lease has TTL to spare; try again.
			s.logTask(t).WithError(err).Warn("renewing the stack lease failed")
		}
	}
}

// outputCloseTimeout bounds sending a task's last output.
const outputCloseTimeout = 2 * time.Minute

// freshContext returns a context for cleanup that outlives ctx's
// cancellation but not by long.
func freshContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
}

// isUserError reports whether err carries a sentence for the requester.
func isUserError(err error) bool {
	_, ok := taskbot.UserMessage(err)
	return ok
}
