package task_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskbot/taskbot"
)

// TestRefusalAuditFailure checks that a refusal that cannot be audited
// still reaches whoever it is for, and the audit failure goes to the log,
// under the task.
func TestRefusalAuditFailure(t *testing.T) {
	tests := []struct {
		name   string
		refuse func(t *testing.T, e *env) // has task 1 refused and checks who was told
	}{
		{
			name: "on request",
			refuse: func(t *testing.T, e *env) {
				_, err := e.do(t, alice, "task", "nope terraform plan")
				userError(t, err, taskbot.ENotFound)
			},
		},
		{
			name: "on approval",
			refuse: func(t *testing.T, e *env) {
				r := requestApproval(t, e)
				e.svc.ApprovalTimeout = time.Nanosecond
				if err := e.svc.React(t.Context(), r); err != nil {
					t.Fatalf("React: %v", err)
				}
				views := e.chat.views()
				if last := views[len(views)-1]; last.Task.State != taskbot.StateRefused {
					t.Errorf("the task's message shows %s, want refused", last.Task.State)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.store.failAppend(taskbot.EventRefused, errAudit)

			tt.refuse(t, e)

			line := e.logLine(t, "auditing the refusal failed")
			for _, want := range []string{"task_id=1", errAudit.Error()} {
				if !strings.Contains(line, want) {
					t.Errorf("log line %q does not say %q", line, want)
				}
			}
			if got := e.store.task(t, "1").State; got != taskbot.StateRefused {
				t.Errorf("task state = %s, want %s", got, taskbot.StateRefused)
			}
			if jobs := e.runner.ran(); len(jobs) != 0 {
				t.Errorf("runner ran %+v, want nothing", jobs)
			}
		})
	}
}

// TestHandleAuditFailureAfterRun checks that once the container has run,
// its outcome stands even if it cannot be audited, and the stack is free
// again either way.
func TestHandleAuditFailureAfterRun(t *testing.T) {
	tests := []struct {
		failing    taskbot.EventType
		exitCode   int
		wantErr    error // nil: the requester is told nothing went wrong
		wantState  taskbot.State
		wantEvents []taskbot.EventType
		wantLog    string // the message the failure is logged with, if not returned
	}{
		{
			failing:   taskbot.EventFinished,
			wantErr:   errAudit,
			wantState: taskbot.StateFinished,
			wantEvents: []taskbot.EventType{taskbot.EventRequested, taskbot.EventDecided,
				taskbot.EventLockAcquired, taskbot.EventStarted, taskbot.EventLockReleased},
		},
		{
			failing:   taskbot.EventFailed,
			exitCode:  3,
			wantErr:   errAudit,
			wantState: taskbot.StateFailed,
			wantEvents: []taskbot.EventType{taskbot.EventRequested, taskbot.EventDecided,
				taskbot.EventLockAcquired, taskbot.EventStarted, taskbot.EventLockReleased},
		},
		{
			failing:   taskbot.EventLockReleased,
			wantState: taskbot.StateFinished,
			wantEvents: []taskbot.EventType{taskbot.EventRequested, taskbot.EventDecided,
				taskbot.EventLockAcquired, taskbot.EventStarted, taskbot.EventFinished},
			wantLog: "auditing the lease release failed",
		},
	}
	for _, tt := range tests {
		t.Run(string(tt.failing), func(t *testing.T) {
			e := newEnv(t)
			e.runner.result.ExitCode = tt.exitCode
			e.store.failAppend(tt.failing, errAudit)

			_, err := e.do(t, alice, "task", "prod terraform plan")

			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Handle error = %v, want %v", err, tt.wantErr)
			}
			if jobs := e.runner.ran(); len(jobs) != 1 {
				t.Errorf("runner ran %+v, want the task once", jobs)
			}
			if leases := e.store.leases(t); len(leases) != 0 {
				t.Errorf("leases = %+v, want none", leases)
			}
			wantShown := []string{"post running", "update " + string(tt.wantState)}
			if diff := cmp.Diff(e.chat.shown(), wantShown); diff != "" {
				t.Errorf("views mismatch (-got +want):\n%s", diff)
			}
			if st := e.store.task(t, "1"); st.State != tt.wantState || st.ExitCode != tt.exitCode {
				t.Errorf("stored task = %s, exit code %d; want %s, %d",
					st.State, st.ExitCode, tt.wantState, tt.exitCode)
			}
			if diff := cmp.Diff(eventTypes(e.store.events(t)), tt.wantEvents); diff != "" {
				t.Errorf("audit event types mismatch (-got +want):\n%s", diff)
			}
			if tt.wantLog == "" {
				return
			}
			if line := e.logLine(t, tt.wantLog); !strings.Contains(line, "task_id=1") {
				t.Errorf("log line %q is not about task 1", line)
			}
		})
	}
}

// TestAbandonAudited checks that a task taskbot gives up on is recorded as
// failed in the audit log too, or, if even that cannot be written, in
// taskbot's own log.
func TestAbandonAudited(t *testing.T) {
	abandon := func(t *testing.T, e *env) {
		t.Helper()
		e.chat.postErr = errChat

		_, err := e.do(t, alice, "task", taint)

		if !errors.Is(err, errChat) || taskbot.ErrorCode(err) != taskbot.EInternal {
			t.Errorf("Handle error = %v, want an internal error wrapping %v", err, errChat)
		}
		if st := e.store.task(t, "1"); st.State != taskbot.StateFailed || st.Detail != "internal error" {
			t.Errorf("stored task = %s %q, want failed %q", st.State, st.Detail, "internal error")
		}
		if jobs := e.runner.ran(); len(jobs) != 0 {
			t.Errorf("runner ran %+v, want nothing", jobs)
		}
	}

	t.Run("failed event", func(t *testing.T) {
		e := newEnv(t)
		abandon(t, e)

		evs := e.store.events(t)
		wantTypes := []taskbot.EventType{
			taskbot.EventRequested, taskbot.EventDecided, taskbot.EventFailed,
		}
		if diff := cmp.Diff(eventTypes(evs), wantTypes); diff != "" {
			t.Fatalf("audit event types mismatch (-got +want):\n%s", diff)
		}
		want := taskbot.Event{Type: taskbot.EventFailed, TaskID: "1", Stack: "prod", User: alice,
			Fields: fields("exit_code", "", "reason", "internal error")}
		if diff := cmp.Diff(evs[2], want, ignoreEventIDTime); diff != "" {
			t.Errorf("failed event mismatch (-got +want):\n%s", diff)
		}
	})

	t.Run("failed event not written", func(t *testing.T) {
		e := newEnv(t)
		e.store.failAppend(taskbot.EventFailed, errAudit)
		abandon(t, e)

		line := e.logLine(t, "recording abandoned task failed")
		for _, want := range []string{"task_id=1", errAudit.Error()} {
			if !strings.Contains(line, want) {
				t.Errorf("log line %q does not say %q", line, want)
			}
		}
	})
}
