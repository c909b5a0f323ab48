package task_test

import (
	"strings"
	"testing"
	"time"

	"github.com/taskbot/taskbot"
)

// An approval starts a task only if it would still be allowed now: the
// requester may have lost write access, or the policy may have changed, or
// the request may simply be too old.
func TestApprovalChecksAgain(t *testing.T) {
	tests := []struct {
		note   string
		change func(t *testing.T, e *env)
		want   string // in the refused task's detail
	}{
		{
			note:   "requester no longer a writer",
			change: func(_ *testing.T, e *env) { e.svc.Stacks["prod"].Writers = []string{bob} },
			want:   "You are not a writer of stack *prod*",
		},
		{
			note: "policy now denies",
			change: func(_ *testing.T, e *env) {
				e.svc.Policy = writePolicy(t, "package taskbot.task\n\ndeny contains \"frozen\" if true\n")
			},
			want: "A policy denied this task",
		},
		{
			note:   "approval too late",
			change: func(_ *testing.T, e *env) { e.svc.ApprovalTimeout = time.Nanosecond },
			want:   "waited more than 1ns for approval, so it expired",
		},
	}
	for _, tt := range tests {
		t.Run(tt.note, func(t *testing.T) {
			e := newEnv(t)
			approve := requestApproval(t, e)
			tt.change(t, e)

			if err := e.svc.React(t.Context(), approve); err != nil {
				t.Fatalf("React: %v", err)
			}
			if jobs := e.runner.ran(); len(jobs) != 0 {
				t.Errorf("runner ran %+v", jobs)
			}
			got := e.store.task(t, "1")
			if got.State != taskbot.StateRefused || !strings.Contains(got.Detail, tt.want) {
				t.Errorf("task = %s %q, want refused with %q", got.State, got.Detail, tt.want)
			}
			views := e.chat.views()
			if last := views[len(views)-1]; last.Task.State != taskbot.StateRefused {
				t.Errorf("the task's message shows %s, want refused", last.Task.State)
			}
		})
	}
}

func TestCommandTooLong(t *testing.T) {
	e := newEnv(t)
	_, err := e.do(t, alice, "task", "prod echo "+strings.Repeat("x", 2000))
	uerr := userError(t, err, taskbot.EInvalid)
	if !strings.Contains(uerr.Message, "at most 2000") {
		t.Errorf("refusal = %q, want it to name the limit", uerr.Message)
	}
	if jobs := e.runner.ran(); len(jobs) != 0 {
		t.Errorf("runner ran %+v", jobs)
	}
}
