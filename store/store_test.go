package store_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/internal/redistest"
	"github.com/taskbot/taskbot/store"
)

// shortTTL is a lease TTL that tests let pass; longTTL is one they never do.
const (
	shortTTL = 20 * time.Millisecond
	longTTL  = time.Hour
)

// env is one fresh, empty server with a Store over it.
type env struct {
	store *store.Store
	rdb   redis.UniversalClient
	// elapse lets d pass as far as key expiry is concerned.
	elapse func(d time.Duration)
}

// backend starts an env of one kind of server.
type backend struct {
	name  string
	start func(t *testing.T) env
}

// backends returns the servers every behaviour is checked against: the real
// redis-server of the deployment and the miniredis of `taskbot shell`.
func backends() []backend {
	return []backend{
		{name: "redis-server", start: func(t *testing.T) env {
			rdb := redistest.Start(t)
			return env{store: store.New(rdb, ""), rdb: rdb, elapse: time.Sleep}
		}},
		{name: "miniredis", start: func(t *testing.T) env {
			mr := miniredis.RunT(t)
			rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
			t.Cleanup(func() { _ = rdb.Close() })
			return env{store: store.New(rdb, ""), rdb: rdb, elapse: mr.FastForward}
		}},
	}
}

// forEachBackend runs check as a subtest against a fresh server of each backend.
func forEachBackend(t *testing.T, check func(t *testing.T, e env)) {
	t.Helper()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { check(t, b.start(t)) })
	}
}

// newTask creates a task on stack for user and returns it.
func newTask(t *testing.T, s *store.Store, stack, user string) *taskbot.Task {
	t.Helper()
	task := &taskbot.Task{Stack: stack, User: user, Channel: "C1", State: taskbot.StateAwaitingApproval}
	if err := s.CreateTask(t.Context(), task); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	return task
}

func TestFirstDelivery(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		steps := []struct {
			key    string
			elapse time.Duration
			want   bool
		}{
			{key: "ev1", want: true},
			{key: "ev1", want: false},
			{key: "ev2", want: true},
			{key: "ev1", elapse: 2 * shortTTL, want: true},
		}
		for i, st := range steps {
			e.elapse(st.elapse)
			got, err := e.store.FirstDelivery(t.Context(), st.key, shortTTL)
			if err != nil || got != st.want {
				t.Errorf("step %d: FirstDelivery(%q) = %v, %v; want %v, nil", i, st.key, got, err, st.want)
			}
		}
	})
}

func TestCreateTaskRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		for i, want := range []*taskbot.Task{
			{Stack: "prod", User: "U1", Channel: "C1", Command: "terraform plan", State: taskbot.StateAwaitingApproval},
			{
				Stack: "dev", User: "U2", Channel: "C2", Command: "terraform taint 'a b'",
				SkipInit: true, State: taskbot.StateFailed, ExitCode: 3, Detail: "exit 3\nsee log",
				MessageTS: "1700000000.000100",
			},
		} {
			before := time.Now()
			if err := e.store.CreateTask(t.Context(), want); err != nil {
				t.Fatalf("CreateTask: %v", err)
			}
			if id := strconv.Itoa(i + 1); want.ID != id {
				t.Errorf("task %d: ID = %q; want %q", i, want.ID, id)
			}
			if want.Created.Before(before) || !want.Updated.Equal(want.Created) {
				t.Errorf("task %d: Created, Updated = %v, %v; want both now", i, want.Created, want.Updated)
			}

			got, err := e.store.Task(t.Context(), want.ID)
			if err != nil {
				t.Fatalf("Task(%q): %v", want.ID, err)
			}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("Task(%q) mismatch (-got +want):\n%s", want.ID, diff)
			}
		}
	})
}

func TestNotFound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		s, ctx := e.store, t.Context()
		for name, call := range map[string]func() error{
			"Task":            func() error { _, err := s.Task(ctx, "9"); return err },
			"SetTaskMessage":  func() error { return s.SetTaskMessage(ctx, "9", "1.2") },
			"TaskIDByMessage": func() error { _, err := s.TaskIDByMessage(ctx, "C1", "1.2"); return err },
			"TransitionTask": func() error {
				_, err := s.TransitionTask(ctx, "9", taskbot.StateAwaitingApproval, taskbot.StateRunning)
				return err
			},
			"FinishTask": func() error { return s.FinishTask(ctx, "9", taskbot.StateFinished, 0, "") },
		} {
			if err := call(); !errors.Is(err, taskbot.ErrNotFound) {
				t.Errorf("%s of a missing task: err = %v; want taskbot.ErrNotFound", name, err)
			}
		}
		if _, err := s.Task(ctx, "9"); err == nil {
			t.Fatal("a missing task was created by the calls above")
		}
	})
}

func TestTaskIDByMessage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		task := newTask(t, e.store, "prod", "U1")
		if err := e.store.SetTaskMessage(t.Context(), task.ID, "1.5"); err != nil {
			t.Fatalf("SetTaskMessage: %v", err)
		}

		if id, err := e.store.TaskIDByMessage(t.Context(), "C1", "1.5"); err != nil || id != task.ID {
			t.Errorf("TaskIDByMessage(C1, 1.5) = %q, %v; want %q, nil", id, err, task.ID)
		}
		if _, err := e.store.TaskIDByMessage(t.Context(), "C2", "1.5"); !errors.Is(err, taskbot.ErrNotFound) {
			t.Errorf("TaskIDByMessage(C2, 1.5): err = %v; want taskbot.ErrNotFound", err)
		}
		got, err := e.store.Task(t.Context(), task.ID)
		if err != nil || got.MessageTS != "1.5" {
			t.Errorf("Task(%q).MessageTS = %+v, %v; want 1.5", task.ID, got, err)
		}
	})
}

func TestTransitionTaskOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		// A lost race shows only when calls happen to interleave, so race
		// on several tasks.
		for range 10 {
			task := newTask(t, e.store, "prod", "U1")
			won, failed := raceTransition(t, e.store, task.ID, 20)
			if won != 1 || failed != 0 {
				t.Errorf("of 20 concurrent transitions %d succeeded and %d failed; want 1 and 0", won, failed)
			}

			got, err := e.store.Task(t.Context(), task.ID)
			if err != nil || got.State != taskbot.StateRunning {
				t.Errorf("Task(%q) = %+v, %v; want state running", task.ID, got, err)
			}
		}
	})
}

// TestTransitionIndexesRunning moves a task to running over a connection
// that drops just after: the task must be listed as running at once, or the
// reaper would never fail it once its replica was gone.
func TestTransitionIndexesRunning(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		task := &taskbot.Task{Stack: "prod", User: "U1", Channel: "C1", State: taskbot.StatePending}
		if err := e.store.CreateTask(t.Context(), task); err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
		dropping := redis.NewClient(e.rdb.(*redis.Client).Options())
		t.Cleanup(func() { _ = dropping.Close() })
		dropping.AddHook(&dropAfterScript{})

		// What it returns depends on where the connection dropped; what
		// the server holds is what counts.
		_, _ = store.New(dropping, "").TransitionTask(t.Context(), task.ID,
			taskbot.StatePending, taskbot.StateRunning)

		got, err := e.store.Task(t.Context(), task.ID)
		if err != nil {
			t.Fatalf("Task: %v", err)
		}
		ids, err := e.store.RunningTasks(t.Context())
		if err != nil {
			t.Fatalf("RunningTasks: %v", err)
		}
		if got.State != taskbot.StateRunning || !slices.Contains(ids, task.ID) {
			t.Errorf("task state = %s, RunningTasks() = %v; want running and listed", got.State, ids)
		}
	})
}

// dropAfterScript drops a connection once a script has run: every later
// command sent on its own fails without reaching the server.
type dropAfterScript struct {
	ran atomic.Bool
}

var errDropped = errors.New("connection dropped")

func (h *dropAfterScript) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *dropAfterScript) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *dropAfterScript) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.ran.Load() {
			return errDropped
		}
		err := next(ctx, cmd)
		if err == nil && strings.HasPrefix(cmd.Name(), "eval") {
			h.ran.Store(true)
		}
		return err
	}
}

// raceTransition has n callers move the task from awaiting approval to
// running at once, and counts the calls that won and those that failed.
func raceTransition(t *testing.T, s *store.Store, id string, n int) (won, failed int32) {
	t.Helper()
	var wins, errs atomic.Int32

	// The callers wait at a start line so that their calls overlap.
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			ok, err := s.TransitionTask(t.Context(), id, taskbot.StateAwaitingApproval, taskbot.StateRunning)
			if err != nil {
				errs.Add(1)
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	return wins.Load(), errs.Load()
}

func TestFinishTask(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		task := newTask(t, e.store, "prod", "U1")
		if err := e.store.FinishTask(t.Context(), task.ID, taskbot.StateFailed, 2, "boom"); err != nil {
			t.Fatalf("FinishTask: %v", err)
		}

		got, err := e.store.Task(t.Context(), task.ID)
		if err != nil {
			t.Fatalf("Task: %v", err)
		}
		finished := got.State == taskbot.StateFailed && got.ExitCode == 2 && got.Detail == "boom"
		if !finished || got.Updated.Before(got.Created) {
			t.Errorf("Task(%q) = %+v; want failed, exit code 2, detail boom, updated", task.ID, got)
		}
	})
}

func TestAddApproval(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		for _, st := range []struct {
			user      string
			want      int
			wantAdded bool
		}{{"U3", 1, true}, {"U1", 2, true}, {"U3", 2, false}} {
			got, added, err := e.store.AddApproval(t.Context(), "1", st.user)
			if err != nil || got != st.want || added != st.wantAdded {
				t.Errorf("AddApproval(%q) = %d, %v, %v; want %d, %v, nil",
					st.user, got, added, err, st.want, st.wantAdded)
			}
		}

		got, err := e.store.Approvals(t.Context(), "1")
		if err != nil {
			t.Fatalf("Approvals: %v", err)
		}
		if diff := cmp.Diff(got, []string{"U1", "U3"}); diff != "" {
			t.Errorf("Approvals mismatch (-got +want):\n%s", diff)
		}

		if err := e.store.RemoveApproval(t.Context(), "1", "U3"); err != nil {
			t.Fatalf("RemoveApproval: %v", err)
		}
		got, err = e.store.Approvals(t.Context(), "1")
		if err != nil {
			t.Fatalf("Approvals: %v", err)
		}
		if diff := cmp.Diff(got, []string{"U1"}); diff != "" {
			t.Errorf("Approvals after RemoveApproval mismatch (-got +want):\n%s", diff)
		}
	})
}

func TestPrefix(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		for _, tc := range []struct{ prefix, want string }{
			{prefix: "", want: store.DefaultPrefix},
			{prefix: "other:", want: "other:"},
		} {
			prefix, want := tc.prefix, tc.want
			s, ctx := store.New(e.rdb, prefix), t.Context()
			if err := e.rdb.FlushDB(ctx).Err(); err != nil {
				t.Fatalf("FLUSHDB: %v", err)
			}
			task, running := newTask(t, s, "prod", "U1"), newTask(t, s, "dev", "U1")
			calls := []error{
				second(s.TransitionTask(ctx, task.ID, taskbot.StateAwaitingApproval, taskbot.StateRunning)),
				second(s.TransitionTask(ctx, running.ID, taskbot.StateAwaitingApproval, taskbot.StateRunning)),
				s.SetTaskMessage(ctx, task.ID, "1.1"),
				s.FinishTask(ctx, task.ID, taskbot.StateFinished, 0, ""),
				second(s.FirstDelivery(ctx, "ev", longTTL)),
				third(s.AddApproval(ctx, task.ID, "U2")),
				second(s.AcquireLease(ctx, "prod", task.ID, "U1", longTTL)),
				second(s.Lock(ctx, "dev", "U1", "")),
				second(s.Append(ctx, taskbot.Event{Type: taskbot.EventStarted})),
			}
			if err := errors.Join(calls...); err != nil {
				t.Fatalf("prefix %q: %v", prefix, err)
			}

			keys, err := e.rdb.Keys(ctx, "*").Result()
			if err != nil {
				t.Fatalf("KEYS: %v", err)
			}
			for _, k := range keys {
				if !strings.HasPrefix(k, want) {
					t.Errorf("prefix %q: key %q does not start with %q", prefix, k, want)
				}
			}
			for _, key := range []string{"audit", "running"} {
				if n, err := e.rdb.Exists(ctx, want+key).Result(); err != nil || n != 1 {
					t.Errorf("prefix %q: EXISTS %s%s = %d, %v; want 1", prefix, want, key, n, err)
				}
			}
		}
	})
}

// second returns the error of a call that also returns a value.
func second[T any](_ T, err error) error { return err }

// third returns the error of a call that also returns two values.
func third[T, U any](_ T, _ U, err error) error { return err }

func TestOpen(t *testing.T) {
	s, err := store.Open(t.Context(), redistest.URL(t), "")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := s.FirstDelivery(t.Context(), "ev", longTTL); err != nil {
		t.Errorf("FirstDelivery over the opened store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestOpenErrorHidesPassword(t *testing.T) {
	for _, url := range []string{
		"redis://:hunter2@127.0.0.1:1/0?max_retries=-1",
		"redis://u:hunter2@127.0.0.1:1/?password=hunter2",
		"redis://:hunter2@127.0.0.1:1/notadb",
		"ftp://:hunter2@127.0.0.1:1/",
		"redis://:hunter2@[::1/",
	} {
		_, err := store.Open(t.Context(), url, "")
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q) error = %v; want an error without the password", url, err)
		}
	}
}

func TestDeploymentID(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			e := b.start(t)
			other := store.New(e.rdb, "other:")
			first, err := e.store.DeploymentID(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			again, err := e.store.DeploymentID(t.Context())
			if err != nil || again != first || len(first) != 16 {
				t.Errorf("DeploymentID = %q then %q, %v; want the same 16 hex digits twice", first, again, err)
			}
			id, err := other.DeploymentID(t.Context())
			if err != nil || id == first {
				t.Errorf("DeploymentID with another prefix = %q, %v; want a different ID", id, err)
			}
		})
	}
}

func TestRunningTasks(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			e := b.start(t)
			ctx := t.Context()
			var ids []string
			for range 3 {
				task := &taskbot.Task{Stack: "prod", User: "U1", Channel: "C1", State: taskbot.StatePending}
				if err := e.store.CreateTask(ctx, task); err != nil {
					t.Fatal(err)
				}
				if _, err := e.store.TransitionTask(ctx, task.ID, taskbot.StatePending, taskbot.StateRunning); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, task.ID)
			}
			if err := e.store.FinishTask(ctx, ids[1], taskbot.StateFinished, 0, ""); err != nil {
				t.Fatal(err)
			}
			got, err := e.store.RunningTasks(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, []string{ids[0], ids[2]}); diff != "" {
				t.Errorf("RunningTasks mismatch (-got +want):\n%s", diff)
			}
		})
	}
}
