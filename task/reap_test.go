package task_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/runner"
)

// crashedTask records a task as a replica that then crashed leaves it:
// running, posted, its container still there, its lease expired.
func crashedTask(tb testing.TB, e *env, stack string) *taskbot.Task {
	tb.Helper()
	ctx := context.Background()
	t := &taskbot.Task{Stack: stack, User: alice, Channel: channel, Command: "sleep 600", State: taskbot.StateRunning}
	if err := e.store.CreateTask(ctx, t); err != nil {
		tb.Fatal(err)
	}
	if err := e.store.SetTaskMessage(ctx, t.ID, "1600000000.000001"); err != nil {
		tb.Fatal(err)
	}
	e.runner.plant(runner.Container{ID: "orphan-" + t.ID, TaskID: t.ID, Stack: stack})
	return t
}

func TestReapRemovesOrphans(t *testing.T) {
	e := newEnv(t)
	orphan := crashedTask(t, e, "prod")

	// A live task's container must survive: its lease accounts for it.
	live := crashedTask(t, e, "dev")
	if _, err := e.store.AcquireLease(context.Background(), "dev", live.ID, alice, time.Hour); err != nil {
		t.Fatal(err)
	}

	if err := e.svc.Reap(t.Context()); err != nil {
		t.Fatalf("Reap: %v", err)
	}
	if diff := cmp.Diff(e.runner.removedIDs(), []string{"orphan-" + orphan.ID}); diff != "" {
		t.Errorf("removed containers mismatch (-got +want):\n%s", diff)
	}
	got := e.store.task(t, orphan.ID)
	if got.State != taskbot.StateFailed || !strings.Contains(got.Detail, "lost track of this task") {
		t.Errorf("orphaned task = %s (%q), want failed, saying taskbot lost track of it", got.State, got.Detail)
	}
	if e.store.task(t, live.ID).State != taskbot.StateRunning {
		t.Errorf("the live task was touched")
	}
	views := e.chat.views()
	if len(views) != 1 || views[0].Task.ID != orphan.ID || views[0].Task.State != taskbot.StateFailed {
		t.Errorf("views = %+v, want the orphan's message updated to failed", views)
	}
	if ev := e.store.taskEvents(t, orphan.ID); len(ev) == 0 || ev[len(ev)-1].Type != taskbot.EventFailed {
		t.Errorf("orphan's audit events = %+v, want a failed event last", ev)
	}
}

// A task that takes a stack removes the stack's orphan before it starts, so
// the two never run side by side, however long the periodic reap waits.
func TestStartRemovesStackOrphan(t *testing.T) {
	e := newEnv(t)
	orphan := crashedTask(t, e, "prod")
	e.runner.plant(runner.Container{ID: "other-stack", TaskID: "77", Stack: "dev"})

	if _, err := e.do(t, alice, "task", "prod terraform plan"); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if diff := cmp.Diff(e.runner.removedIDs(), []string{"orphan-" + orphan.ID}); diff != "" {
		t.Errorf("removed containers mismatch (-got +want):\n%s", diff)
	}
	if len(e.runner.ran()) != 1 {
		t.Errorf("the new task did not run")
	}
}

// A replica may die after it marked a task running but before the task's
// container existed: the task must not show running forever.
func TestReapFailsRunningTaskWithoutContainer(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	stranded := &taskbot.Task{Stack: "prod", User: alice, Channel: channel, Command: "terraform plan",
		State: taskbot.StatePending}
	if err := e.store.CreateTask(ctx, stranded); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.TransitionTask(ctx, stranded.ID, taskbot.StatePending, taskbot.StateRunning); err != nil {
		t.Fatal(err)
	}

	if err := e.svc.Reap(t.Context()); err != nil {
		t.Fatalf("Reap: %v", err)
	}
	got := e.store.task(t, stranded.ID)
	if got.State != taskbot.StateFailed || !strings.Contains(got.Detail, "lost track of this task") {
		t.Errorf("stranded task = %s (%q), want failed, saying taskbot lost track of it", got.State, got.Detail)
	}
	if ids, err := e.store.RunningTasks(ctx); err != nil || len(ids) != 0 {
		t.Errorf("RunningTasks() = %v, %v; want none left", ids, err)
	}
}
