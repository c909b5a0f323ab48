package task_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/command"
	"github.com/taskbot/taskbot/runner"
	"github.com/taskbot/taskbot/task"
)

func TestValidate(t *testing.T) {
	e := newEnv(t)
	complete := *e.svc

	tests := []struct {
		name  string
		unset func(s *task.Service)
	}{
		{"no stacks", func(s *task.Service) { s.Stacks = nil }},
		{"no store", func(s *task.Service) { s.Store = nil }},
		{"no policy", func(s *task.Service) { s.Policy = nil }},
		{"no runner", func(s *task.Service) { s.Runner = nil }},
		{"no directory", func(s *task.Service) { s.Directory = nil }},
		{"no chat", func(s *task.Service) { s.Chat = nil }},
		{"no masker", func(s *task.Service) { s.Masker = nil }},
		{"no log", func(s *task.Service) { s.Log = nil }},
		{"no emoji", func(s *task.Service) { s.Emoji = "" }},
	}
	if err := complete.Validate(); err != nil {
		t.Fatalf("Validate() of a complete service = %v, want nil", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := complete
			tt.unset(&s)
			if err := s.Validate(); !errors.Is(err, task.ErrMisconfigured) {
				t.Errorf("Validate() = %v, want ErrMisconfigured", err)
			}
		})
	}
}

func TestHandleRunsTask(t *testing.T) {
	e := newEnv(t)

	reply, err := e.do(t, alice, "task", "prod terraform plan")
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if diff := cmp.Diff(reply, task.Reply{}); diff != "" {
		t.Errorf("Handle reply mismatch (-got +want):\n%s", diff)
	}

	wantJob := runner.Job{
		TaskID:  "1",
		Stack:   "prod",
		Owner:   owner,
		Image:   "example/terraform:1.9",
		Init:    "terraform init",
		Command: "terraform plan",
		Workdir: "/work",
		Env: []string{
			"API_TOKEN=" + apiToken,
			"AWS_REGION=eu-west-1",
			"DB_PASSWORD=" + dbPassword,
			"TF_IN_AUTOMATION=1",
		},
		Timeout: 10 * time.Minute,
	}
	if diff := cmp.Diff(e.runner.ran(), []runner.Job{wantJob}); diff != "" {
		t.Errorf("runner jobs mismatch (-got +want):\n%s", diff)
	}

	running := taskbot.Task{
		ID: "1", Stack: "prod", User: alice, Channel: channel,
		Command: "terraform plan", State: taskbot.StateRunning,
	}
	finished := running
	finished.State, finished.MessageTS = taskbot.StateFinished, "1700000000.000001"
	wantViews := []task.View{{Task: running, Emoji: emoji}, {Task: finished, Emoji: emoji}}
	if diff := cmp.Diff(e.chat.views(), wantViews, ignoreTaskTimes); diff != "" {
		t.Errorf("views mismatch (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(e.store.task(t, "1"), &finished, ignoreTaskTimes); diff != "" {
		t.Errorf("stored task mismatch (-got +want):\n%s", diff)
	}

	ev := func(typ taskbot.EventType, kv ...string) taskbot.Event {
		return taskbot.Event{Type: typ, TaskID: "1", Stack: "prod", User: alice, Fields: fields(kv...)}
	}
	wantEvents := []taskbot.Event{
		ev(taskbot.EventRequested, "command", "terraform plan", "skip_init", "false", "channel", channel),
		ev(taskbot.EventDecided, "decision", "allow", "reasons", ""),
		ev(taskbot.EventLockAcquired, "kind", "task", "token", "1"),
		ev(taskbot.EventStarted, "image", "example/terraform:1.9"),
		ev(taskbot.EventFinished, "exit_code", "0"),
		ev(taskbot.EventLockReleased, "kind", "task", "token", "1"),
	}
	if diff := cmp.Diff(e.store.events(t), wantEvents, ignoreEventIDTime); diff != "" {
		t.Errorf("audit events mismatch (-got +want):\n%s", diff)
	}

	// The lease is back: the stack shows free, and the next task takes it.
	if leases := e.store.leases(t); len(leases) != 0 {
		t.Errorf("leases after the task = %+v, want none", leases)
	}
	if _, err := e.do(t, bob, "task", "prod terraform plan"); err != nil {
		t.Fatalf("Handle of the next task: %v", err)
	}
	if got := e.store.task(t, "2").State; got != taskbot.StateFinished {
		t.Errorf("next task state = %s, want %s", got, taskbot.StateFinished)
	}
}

func TestHandleJob(t *testing.T) {
	prodEnv := []string{
		"API_TOKEN=" + apiToken, "AWS_REGION=eu-west-1", "DB_PASSWORD=" + dbPassword, "TF_IN_AUTOMATION=1",
	}
	tests := []struct {
		name       string
		user, text string
		want       runner.Job
	}{
		{
			name: "skip init",
			user: alice, text: "prod --skip-init terraform plan",
			want: runner.Job{
				TaskID: "1", Stack: "prod", Owner: owner, Image: "example/terraform:1.9", Command: "terraform plan",
				Workdir: "/work", Env: prodEnv, Timeout: 10 * time.Minute,
			},
		},
		{
			name: "writer through a user group",
			user: dave, text: "prod terraform plan",
			want: runner.Job{
				TaskID: "1", Stack: "prod", Owner: owner, Image: "example/terraform:1.9", Init: "terraform init",
				Command: "terraform plan", Workdir: "/work", Env: prodEnv, Timeout: 10 * time.Minute,
			},
		},
		{
			name: "stack without init, env or timeout",
			user: carol, text: "dev ls -la",
			want: runner.Job{TaskID: "1", Stack: "dev", Owner: owner, Image: "example/dev:latest", Command: "ls -la"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if _, err := e.do(t, tt.user, "task", tt.text); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if diff := cmp.Diff(e.runner.ran(), []runner.Job{tt.want}); diff != "" {
				t.Errorf("runner jobs mismatch (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(e.chat.shown(), []string{"post running", "update finished"}); diff != "" {
				t.Errorf("views mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestHandleOutcome(t *testing.T) {
	tests := []struct {
		name       string
		result     runner.Result
		err        error
		wantCode   int
		wantDetail string
		audited    string // the audited exit_code
	}{
		{
			name:     "non-zero exit",
			result:   runner.Result{ExitCode: 3, Phase: runner.PhasePerform},
			wantCode: 3,
			audited:  "3",
		},
		{
			name:       "init failed",
			result:     runner.Result{ExitCode: 1, Phase: runner.PhaseInit},
			wantCode:   1,
			wantDetail: "the init phase failed",
			audited:    "1",
		},
		{
			name:       "timed out",
			result:     runner.Result{ExitCode: 137, Phase: runner.PhasePerform, TimedOut: true},
			wantCode:   137,
			wantDetail: "timed out after 10m0s",
			audited:    "137",
		},
		{
			name:       "image unavailable",
			err:        fmt.Errorf("pull example/terraform:1.9: %w", runner.ErrImageUnavailable),
			wantDetail: "image example/terraform:1.9 is not available",
		},
		{
			name:       "runner failed",
			err:        errors.New("docker engine unreachable"),
			wantDetail: "taskbot could not run the container",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.runner.result, e.runner.err = tt.result, tt.err

			if _, err := e.do(t, alice, "task", "prod terraform plan"); err != nil {
				t.Fatalf("Handle: %v", err)
			}

			views := e.chat.views()
			if len(views) != 2 {
				t.Fatalf("got %d views, want 2 (running, failed)", len(views))
			}
			final := views[1].Task
			got := [3]string{string(final.State), fmt.Sprint(final.ExitCode), final.Detail}
			want := [3]string{string(taskbot.StateFailed), fmt.Sprint(tt.wantCode), tt.wantDetail}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("final view (state, exit code, detail) mismatch (-got +want):\n%s", diff)
			}
			st := e.store.task(t, "1")
			got = [3]string{string(st.State), fmt.Sprint(st.ExitCode), st.Detail}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("stored task (state, exit code, detail) mismatch (-got +want):\n%s", diff)
			}

			evs := e.store.events(t)
			wantTail := []taskbot.Event{
				{Type: taskbot.EventFailed, TaskID: "1", Stack: "prod", User: alice,
					Fields: fields("exit_code", tt.audited, "reason", tt.wantDetail)},
				{Type: taskbot.EventLockReleased, TaskID: "1", Stack: "prod", User: alice,
					Fields: fields("kind", "task", "token", "1")},
			}
			if diff := cmp.Diff(evs[len(evs)-2:], wantTail, ignoreEventIDTime); diff != "" {
				t.Errorf("last audit events mismatch (-got +want):\n%s", diff)
			}
			if leases := e.store.leases(t); len(leases) != 0 {
				t.Errorf("leases after the task = %+v, want none", leases)
			}
		})
	}
}

func TestHandleRefuses(t *testing.T) {
	tests := []struct {
		name       string
		user, text string
		setup      func(t *testing.T, e *env)
		wantCode   taskbot.Code
		wantErr    error    // for internal errors: what err must wrap
		wantMsg    []string // for user errors: what the message must say
		wantEvents []taskbot.EventType
	}{
		{
			name: "unknown stack",
			user: alice, text: "nope terraform plan",
			wantCode:   taskbot.ENotFound,
			wantMsg:    []string{`There is no stack "nope"`, "`/task help` lists the stacks you may use."},
			wantEvents: []taskbot.EventType{taskbot.EventRequested, taskbot.EventRefused},
		},
		{
			name: "not a writer",
			user: eve, text: "prod terraform plan",
			wantCode: taskbot.EForbidden,
			wantMsg: []string{"You are not a writer of stack *prod*",
				"Its writers: <@UALICE>, <@UBOB>, <!subteam^SOPS>."},
			wantEvents: []taskbot.EventType{taskbot.EventRequested, taskbot.EventRefused},
		},
		{
			// An unreadable group denies its members only, as non-writers.
			name: "user group lookup fails",
			user: dave, text: "prod terraform plan",
			setup:      func(t *testing.T, e *env) { e.dir.err = errDirectory },
			wantCode:   taskbot.EForbidden,
			wantMsg:    []string{"You are not a writer of stack *prod*"},
			wantEvents: []taskbot.EventType{taskbot.EventRequested, taskbot.EventRefused},
		},
		{
			name: "policy denies",
			user: alice, text: "prod terraform destroy",
			wantCode:   taskbot.EDenied,
			wantMsg:    []string{"A policy denied this task:\n• " + destroyReason},
			wantEvents: []taskbot.EventType{taskbot.EventRequested, taskbot.EventDecided, taskbot.EventRefused},
		},
		{
			name: "policy evaluation fails",
			user: alice, text: "prod terraform plan",
			setup: func(t *testing.T, e *env) {
				// to_number fails on a command that is not a number, and
				// builtin errors are evaluation errors.
				e.svc.Policy = writePolicy(t, "package taskbot.task\n\n"+
					"deny contains \"too many\" if to_number(input.command) > 3\n")
			},
			wantCode:   taskbot.EDenied,
			wantMsg:    []string{"A policy denied this task:\n• policy evaluation failed"},
			wantEvents: []taskbot.EventType{taskbot.EventRequested, taskbot.EventDecided, taskbot.EventRefused},
		},
		{
			name: "locked by another user",
			user: alice, text: "prod terraform plan",
			setup: func(t *testing.T, e *env) {
				if _, err := e.store.Lock(t.Context(), "prod", bob, "db migration"); err != nil {
					t.Fatal(err)
				}
			},
			wantCode: taskbot.EConflict,
			wantMsg: []string{"Stack *prod* is locked by <@UBOB>: db migration. " +
				"Only they can run tasks on it until they `/unlock prod`."},
			wantEvents: []taskbot.EventType{taskbot.EventRequested, taskbot.EventDecided, taskbot.EventRefused},
		},
		{
			// Refused at once rather than after a pointless wait for approval.
			name: "locked by another user, needs approval",
			user: alice, text: taint,
			setup: func(t *testing.T, e *env) {
				if _, err := e.store.Lock(t.Context(), "prod", bob, ""); err != nil {
					t.Fatal(err)
				}
			},
			wantCode: taskbot.EConflict,
			wantMsg: []string{"Stack *prod* is locked by <@UBOB>. " +
				"Only they can run tasks on it until they `/unlock prod`."},
			wantEvents: []taskbot.EventType{taskbot.EventRequested, taskbot.EventDecided, taskbot.EventRefused},
		},
		{
			// A decision taskbot cannot account for is no decision: the
			// task is refused, and nothing is locked or run.
			name: "decision not audited",
			user: alice, text: "prod terraform plan",
			setup:      func(t *testing.T, e *env) { e.store.failAppend(taskbot.EventDecided, errAudit) },
			wantCode:   taskbot.EInternal,
			wantErr:    errAudit,
			wantEvents: []taskbot.EventType{taskbot.EventRequested, taskbot.EventRefused},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.setup != nil {
				tt.setup(t, e)
			}

			reply, err := e.do(t, tt.user, "task", tt.text)

			if got := taskbot.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("Handle error = %v (code %s), want code %s", err, got, tt.wantCode)
			}
			wantReason := "internal error"
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Handle error = %v, want it to wrap %v", err, tt.wantErr)
				}
				if msg, ok := taskbot.UserMessage(err); ok {
					t.Errorf("UserMessage(%v) = %q, want none: the error is internal", err, msg)
				}
			} else {
				wantReason = userError(t, err, tt.wantCode).Message
				for _, want := range tt.wantMsg {
					if !strings.Contains(wantReason, want) {
						t.Errorf("Handle error %q does not say %q", wantReason, want)
					}
				}
			}
			if reply != (task.Reply{}) {
				t.Errorf("Handle reply = %+v, want none", reply)
			}

			if jobs := e.runner.ran(); len(jobs) != 0 {
				t.Errorf("runner ran %+v, want nothing", jobs)
			}
			if events := e.chat.all(); len(events) != 0 {
				t.Errorf("chat got %+v, want nothing: refusals are only the requester's", events)
			}
			evs := e.store.events(t)
			if diff := cmp.Diff(eventTypes(evs), tt.wantEvents); diff != "" {
				t.Fatalf("audit event types mismatch (-got +want):\n%s", diff)
			}
			refused := evs[len(evs)-1]
			want := taskbot.Event{Type: taskbot.EventRefused, TaskID: "1", Stack: strings.Fields(tt.text)[0],
				User: tt.user, Fields: fields("reason", wantReason)}
			if diff := cmp.Diff(refused, want, ignoreEventIDTime); diff != "" {
				t.Errorf("refused event mismatch (-got +want):\n%s", diff)
			}
			if st := e.store.task(t, "1"); st.State != taskbot.StateRefused || st.Detail != wantReason {
				t.Errorf("stored task = %s %q, want %s %q", st.State, st.Detail, taskbot.StateRefused, wantReason)
			}
			if leases := e.store.leases(t); len(leases) != 0 {
				t.Errorf("leases = %+v, want none", leases)
			}
		})
	}
}

func TestHandleRefusesBusyStack(t *testing.T) {
	e := newEnv(t)
	e.runner = newBlockingRunner(t)
	e.svc.Runner = e.runner

	first := e.doAsync(t, alice, "task", "prod terraform plan")
	e.runner.waitStarted(t)

	_, err := e.do(t, bob, "task", "prod terraform plan")

	uerr := userError(t, err, taskbot.EConflict)
	want := "Stack *prod* is busy: task 1 by <@UALICE> is running. Try again when it has finished."
	if uerr.Message != want {
		t.Errorf("Handle error = %q, want %q", uerr.Message, want)
	}
	wantTypes := []taskbot.EventType{taskbot.EventRequested, taskbot.EventDecided, taskbot.EventRefused}
	if diff := cmp.Diff(eventTypes(e.store.taskEvents(t, "2")), wantTypes); diff != "" {
		t.Errorf("audit event types of the refused task mismatch (-got +want):\n%s", diff)
	}

	e.runner.unblock()
	if err := receive(t, first); err != nil {
		t.Fatalf("Handle of the running task: %v", err)
	}
	var ran []string
	for _, j := range e.runner.ran() {
		ran = append(ran, j.TaskID)
	}
	if diff := cmp.Diff(ran, []string{"1"}); diff != "" {
		t.Errorf("tasks run mismatch (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(e.chat.shown(), []string{"post running", "update finished"}); diff != "" {
		t.Errorf("views mismatch (-got +want):\n%s", diff)
	}
}

func TestHandleAuditFailure(t *testing.T) {
	tests := []struct {
		failing    taskbot.EventType
		wantShown  []string
		wantDetail string
		wantEvents []taskbot.EventType
	}{
		{
			failing:    taskbot.EventRequested,
			wantDetail: "internal error",
			wantEvents: []taskbot.EventType{taskbot.EventFailed},
		},
		{
			failing:    taskbot.EventLockAcquired,
			wantShown:  []string{"post failed"},
			wantDetail: "taskbot could not start the task",
			wantEvents: []taskbot.EventType{taskbot.EventRequested, taskbot.EventDecided,
				taskbot.EventFailed, taskbot.EventLockReleased},
		},
		{
			failing:    taskbot.EventStarted,
			wantShown:  []string{"post running", "update failed"},
			wantDetail: "taskbot could not start the task",
			wantEvents: []taskbot.EventType{taskbot.EventRequested, taskbot.EventDecided,
				taskbot.EventLockAcquired, taskbot.EventFailed, taskbot.EventLockReleased},
		},
	}
	for _, tt := range tests {
		t.Run(string(tt.failing), func(t *testing.T) {
			e := newEnv(t)
			e.store.failAppend(tt.failing, errAudit)

			_, err := e.do(t, alice, "task", "prod terraform plan")

			if !errors.Is(err, errAudit) {
				t.Errorf("Handle error = %v, want it to wrap %v", err, errAudit)
			}
			if code := taskbot.ErrorCode(err); code != taskbot.EInternal {
				t.Errorf("Handle error code = %s, want %s", code, taskbot.EInternal)
			}
			if jobs := e.runner.ran(); len(jobs) != 0 {
				t.Errorf("runner ran %+v, want nothing: a task taskbot cannot audit must not run", jobs)
			}
			if leases := e.store.leases(t); len(leases) != 0 {
				t.Errorf("leases = %+v, want none", leases)
			}
			if diff := cmp.Diff(e.chat.shown(), tt.wantShown); diff != "" {
				t.Errorf("views mismatch (-got +want):\n%s", diff)
			}
			if st := e.store.task(t, "1"); st.State != taskbot.StateFailed || st.Detail != tt.wantDetail {
				t.Errorf("stored task = %s %q, want %s %q", st.State, st.Detail, taskbot.StateFailed, tt.wantDetail)
			}
			if diff := cmp.Diff(eventTypes(e.store.events(t)), tt.wantEvents, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("audit event types mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

// movingRunner moves task 1 on, as something other than its request
// might, while the task is being started: when taskbot looks for the
// stack's orphans, just before it marks the task running.
type movingRunner struct {
	*fakeRunner
	store *failingStore
}

var _ task.Runner = (*movingRunner)(nil)

// Containers implements task.Runner.
func (r *movingRunner) Containers(ctx context.Context, owner string) ([]runner.Container, error) {
	if err := r.store.FinishTask(ctx, "1", taskbot.StateFailed, 0, "failed elsewhere"); err != nil {
		return nil, err
	}
	return r.fakeRunner.Containers(ctx, owner)
}

// TestHandleTaskMovedOn checks that a task that is no longer pending when
// taskbot would mark it running is not run, and that its state and message
// are left to whatever moved it on.
func TestHandleTaskMovedOn(t *testing.T) {
	e := newEnv(t)
	e.svc.Runner = &movingRunner{fakeRunner: e.runner, store: e.store}

	_, err := e.do(t, alice, "task", "prod terraform plan")

	if err == nil || taskbot.ErrorCode(err) != taskbot.EInternal {
		t.Errorf("Handle error = %v, want an internal error", err)
	}
	if jobs := e.runner.ran(); len(jobs) != 0 {
		t.Errorf("runner ran %+v, want nothing", jobs)
	}
	if leases := e.store.leases(t); len(leases) != 0 {
		t.Errorf("leases = %+v, want none", leases)
	}
	if events := e.chat.all(); len(events) != 0 {
		t.Errorf("chat got %+v, want nothing", events)
	}
	if st := e.store.task(t, "1"); st.State != taskbot.StateFailed || st.Detail != "failed elsewhere" {
		t.Errorf("stored task = %s %q, want it left failed %q", st.State, st.Detail, "failed elsewhere")
	}
	wantTypes := []taskbot.EventType{taskbot.EventRequested, taskbot.EventDecided,
		taskbot.EventLockAcquired, taskbot.EventLockReleased}
	if diff := cmp.Diff(eventTypes(e.store.events(t)), wantTypes); diff != "" {
		t.Errorf("audit event types mismatch (-got +want):\n%s", diff)
	}
}

func TestHelp(t *testing.T) {
	tests := []struct {
		user string
		want string
	}{
		{alice, "Stacks you can run tasks on: dev, prod"},
		{bob, "Stacks you can run tasks on: prod"},
		{dave, "Stacks you can run tasks on: prod"},
		{carol, "Stacks you can run tasks on: dev"},
		{eve, "You are not a writer of any stack, so you cannot run tasks yet."},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			e := newEnv(t)

			reply, err := e.do(t, tt.user, "task", "help")
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}

			usage, stacks, ok := strings.Cut(reply.Text, "\n\n")
			if !ok {
				t.Fatalf("help %q has no stack list after a blank line", reply.Text)
			}
			if stacks != tt.want {
				t.Errorf("help stack list = %q, want %q", stacks, tt.want)
			}
			for _, name := range []string{"task", "lock", "unlock"} {
				if !strings.Contains(usage, command.Usage(name)) {
					t.Errorf("help %q lacks the usage of /%s", usage, name)
				}
			}
			if reply.Public {
				t.Error("help is public, want it only for the requester")
			}
			if len(e.store.events(t)) != 0 {
				t.Error("help was audited, want no events")
			}
		})
	}

	// One unreadable group must not break help, or tasks, for everyone.
	t.Run("group lookup fails", func(t *testing.T) {
		e := newEnv(t)
		e.dir.err = errDirectory
		reply, err := e.do(t, alice, "task", "help")
		if err != nil || !strings.Contains(reply.Text, "Stacks you can run tasks on: dev, prod") {
			t.Errorf("help for a writer by ID = %q, %v; want her stacks", reply.Text, err)
		}
		if _, err := e.do(t, alice, "task", "prod terraform plan"); err != nil {
			t.Errorf("a writer by ID is refused while a group is unreadable: %v", err)
		}
		if !strings.Contains(e.logs.String(), "user group unreadable") {
			t.Errorf("log does not say the group was unreadable:\n%s", e.logs.String())
		}
	})
}

func TestHandleUnknownCommand(t *testing.T) {
	e := newEnv(t)
	req := task.Request{User: alice, Channel: channel, Command: command.Command{Name: "deploy"}}
	_, err := e.svc.Handle(t.Context(), req)
	userError(t, err, taskbot.EInvalid)
}

// TestHandleLogsLeftover checks that a container the runner could not
// remove is logged with the task, and does not fail a task that worked.
func TestHandleLogsLeftover(t *testing.T) {
	e := newEnv(t)
	e.runner.result = runner.Result{Phase: runner.PhasePerform, Leftover: errors.New("engine busy")}

	if _, err := e.do(t, alice, "task", "prod terraform plan"); err != nil {
		t.Fatalf("Handle: %v", err)
	}

	if st := e.store.task(t, "1"); st.State != taskbot.StateFinished {
		t.Errorf("task state = %s, want finished", st.State)
	}
	line := e.logLine(t, "removing the task's container failed; the stack's next task removes it")
	if !strings.Contains(line, "engine busy") || !strings.Contains(line, "task_id=1") {
		t.Errorf("log line %q lacks the error or the task", line)
	}
}

// TestHandleCannotPost checks that a task whose message cannot be posted,
// for a reason the requester can fix, is refused: nothing runs, the stack
// is free again, and the audit log says refused, not failed.
func TestHandleCannotPost(t *testing.T) {
	errNotInvited := taskbot.Errorf(taskbot.EForbidden, "Invite me with `/invite @taskbot` and try again.")
	tests := []struct {
		text       string
		wantEvents []taskbot.EventType
	}{
		{"prod terraform plan", []taskbot.EventType{taskbot.EventRequested, taskbot.EventDecided,
			taskbot.EventLockAcquired, taskbot.EventRefused, taskbot.EventLockReleased}},
		{taint, []taskbot.EventType{taskbot.EventRequested, taskbot.EventDecided, taskbot.EventRefused}},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			e := newEnv(t)
			e.chat.postErr = errNotInvited

			_, err := e.do(t, alice, "task", tt.text)

			if uerr := userError(t, err, taskbot.EForbidden); !strings.Contains(uerr.Message, "/invite @taskbot") {
				t.Errorf("Handle error %q, want the request to invite taskbot", uerr.Message)
			}
			if jobs := e.runner.ran(); len(jobs) != 0 {
				t.Errorf("runner ran %+v, want nothing", jobs)
			}
			if leases := e.store.leases(t); len(leases) != 0 {
				t.Errorf("leases = %+v, want none", leases)
			}
			if st := e.store.task(t, "1"); st.State != taskbot.StateRefused {
				t.Errorf("task state = %s, want refused", st.State)
			}
			if diff := cmp.Diff(eventTypes(e.store.events(t)), tt.wantEvents); diff != "" {
				t.Errorf("audit event types mismatch (-got +want):\n%s", diff)
			}
		})
	}
}
