package task_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/runner"
)

func TestLeaseRenewal(t *testing.T) {
	const ttl = 300 * time.Millisecond
	e := newEnv(t)
	e.runner = newBlockingRunner(t)
	e.svc.Runner = e.runner
	e.svc.LeaseTTL = ttl

	first := e.doAsync(t, alice, "task", "prod terraform plan")
	e.runner.waitStarted(t)

	// Let more than the TTL pass in steps shorter than it, each after a
	// renewal: the lease survives only if it is renewed.
	for range 3 {
		before := e.store.elapse(ttl * 5 / 6)
		waitUntil(t, "the lease is renewed", func() bool {
			n, _ := e.store.renewed()
			return n > before
		})
	}
	if _, got := e.store.renewed(); got != ttl {
		t.Errorf("lease renewed for %s, want %s", got, ttl)
	}

	_, err := e.do(t, bob, "task", "prod terraform plan")
	uerr := userError(t, err, taskbot.EConflict)
	if !strings.Contains(uerr.Message, "busy: task 1") {
		t.Errorf("Handle error = %q, want the stack busy with task 1", uerr.Message)
	}

	e.runner.unblock()
	if err := receive(t, first); err != nil {
		t.Fatalf("Handle of the long task: %v", err)
	}
	if got := e.store.task(t, "1").State; got != taskbot.StateFinished {
		t.Errorf("long task state = %s, want %s", got, taskbot.StateFinished)
	}
	if leases := e.store.leases(t); len(leases) != 0 {
		t.Errorf("leases after the task = %+v, want none", leases)
	}
}

func TestLeaseLostStopsTask(t *testing.T) {
	const ttl = 300 * time.Millisecond
	e := newEnv(t)
	e.runner = newBlockingRunner(t)
	e.svc.Runner = e.runner
	e.svc.LeaseTTL = ttl

	first := e.doAsync(t, alice, "task", "prod terraform plan")
	e.runner.waitStarted(t)

	// The lease expires, as if this replica had stalled, and another
	// replica's task takes the stack.
	e.store.elapse(2 * ttl)
	if _, err := e.store.AcquireLease(context.Background(), "prod", "99", bob, time.Hour); err != nil {
		t.Fatalf("AcquireLease by another replica: %v", err)
	}

	if err := receive(t, first); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	st := e.store.task(t, "1")
	if st.State != taskbot.StateFailed || !strings.Contains(st.Detail, "lease was lost") {
		t.Errorf("task state = %s (%q), want %s saying the lease was lost: it must stop once its lease is lost",
			st.State, st.Detail, taskbot.StateFailed)
	}
	leases := e.store.leases(t)
	if len(leases) != 1 || leases[0].TaskID != "99" {
		t.Errorf("leases = %+v, want only task 99's: the old holder must not release it", leases)
	}
	if !strings.Contains(e.logs.String(), "stack lease lost") {
		t.Errorf("log does not say the lease was lost:\n%s", e.logs.String())
	}
}

// panicRunner stands for a bug in running a task.
type panicRunner struct{ fakeRunner }

func (*panicRunner) Run(context.Context, runner.Job, io.Writer, io.Writer) (runner.Result, error) {
	panic("runner bug")
}

func TestPanicReleasesStack(t *testing.T) {
	e := newEnv(t)
	e.svc.Runner = &panicRunner{}

	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Error("Handle did not pass the panic on")
			}
		}()
		_, _ = e.do(t, alice, "task", "prod terraform plan")
	}()
	if leases := e.store.leases(t); len(leases) != 0 {
		t.Errorf("leases after a panic = %+v, want none: the stack must not stay busy", leases)
	}
}
