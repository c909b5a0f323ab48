package task_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/runner"
	"github.com/taskbot/taskbot/store"
	"github.com/taskbot/taskbot/task"
)

// failingStore is taskbot's real Redis store, on miniredis, which a test can
// tell to fail the audit log. It also counts lease renewals and lets time
// pass for key expiry between them.
type failingStore struct {
	*store.Store
	mr *miniredis.Miniredis

	mu        sync.Mutex
	appendErr map[taskbot.EventType]error // guarded by mu
	renewals  int                         // guarded by mu; successful RenewLease calls
	renewTTL  time.Duration               // guarded by mu; the TTL of the last renewal
}

var _ task.Store = (*failingStore)(nil)

func newStore(tb testing.TB) *failingStore {
	tb.Helper()
	mr := miniredis.RunT(tb)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	tb.Cleanup(func() { _ = rdb.Close() })
	return &failingStore{Store: store.New(rdb, ""), mr: mr, appendErr: map[taskbot.EventType]error{}}
}

// failAppend makes appending events of type typ fail with err; nil heals.
func (s *failingStore) failAppend(typ taskbot.EventType, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appendErr[typ] = err
}

// Append implements task.Store.
func (s *failingStore) Append(ctx context.Context, ev taskbot.Event) (string, error) {
	s.mu.Lock()
	err := s.appendErr[ev.Type]
	s.mu.Unlock()
	if err != nil {
		return "", err
	}
	return s.Store.Append(ctx, ev)
}

// RenewLease implements task.Store. It holds mu so that elapse never falls
// between a renewal and its count.
func (s *failingStore) RenewLease(ctx context.Context, l taskbot.Lease, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.Store.RenewLease(ctx, l, ttl); err != nil {
		return err
	}
	s.renewals++
	s.renewTTL = ttl
	return nil
}

// elapse lets d pass as far as key expiry is concerned, and returns how many
// renewals came before.
func (s *failingStore) elapse(d time.Duration) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mr.FastForward(d)
	return s.renewals
}

func (s *failingStore) renewed() (int, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.renewals, s.renewTTL
}

// events returns the whole audit log, oldest first.
func (s *failingStore) events(tb testing.TB) []taskbot.Event {
	tb.Helper()
	evs, err := s.Events(context.Background(), 10000)
	if err != nil {
		tb.Fatalf("Events: %v", err)
	}
	return evs
}

// taskEvents returns the audit events of one task.
func (s *failingStore) taskEvents(tb testing.TB, id string) []taskbot.Event {
	tb.Helper()
	var out []taskbot.Event
	for _, ev := range s.events(tb) {
		if ev.TaskID == id {
			out = append(out, ev)
		}
	}
	return out
}

func (s *failingStore) task(tb testing.TB, id string) *taskbot.Task {
	tb.Helper()
	t, err := s.Task(context.Background(), id)
	if err != nil {
		tb.Fatalf("Task(%s): %v", id, err)
	}
	return t
}

// leases returns the task leases held now.
func (s *failingStore) leases(tb testing.TB) []taskbot.Lock {
	tb.Helper()
	locks, err := s.Locks(context.Background())
	if err != nil {
		tb.Fatalf("Locks: %v", err)
	}
	var out []taskbot.Lock
	for _, l := range locks {
		if l.Kind == taskbot.LockTask {
			out = append(out, l)
		}
	}
	return out
}

// fakeRunner runs nothing: it records the Jobs it gets, writes the given
// output, and returns the given Result and error. A blocking fakeRunner
// waits in Run until unblock (or its context ends).
type fakeRunner struct {
	stdout, stderr []string // written in order, stdout first
	result         runner.Result
	err            error

	started chan runner.Job // if non-nil, receives every Job once its output is written
	release chan struct{}   // if non-nil, Run waits for it to close
	once    sync.Once

	mu         sync.Mutex
	jobs       []runner.Job                // guarded by mu
	containers map[string]runner.Container // by ID: running jobs and planted orphans; guarded by mu
	removed    []string                    // IDs passed to Remove; guarded by mu
}

var _ task.Runner = (*fakeRunner)(nil)

// newBlockingRunner returns a fakeRunner that waits in Run until unblock,
// which the test's cleanup calls too.
func newBlockingRunner(tb testing.TB) *fakeRunner {
	tb.Helper()
	r := &fakeRunner{started: make(chan runner.Job, 16), release: make(chan struct{})}
	tb.Cleanup(r.unblock)
	return r
}

func (r *fakeRunner) unblock() {
	r.once.Do(func() { close(r.release) })
}

// Run implements task.Runner.
func (r *fakeRunner) Run(
	ctx context.Context, job runner.Job, stdout, stderr io.Writer,
) (runner.Result, error) {
	r.mu.Lock()
	r.jobs = append(r.jobs, job)
	r.plantLocked(runner.Container{ID: "c-" + job.TaskID, TaskID: job.TaskID, Stack: job.Stack})
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.containers, "c-"+job.TaskID)
		r.mu.Unlock()
	}()

	for _, s := range r.stdout {
		if _, err := io.WriteString(stdout, s); err != nil {
			return runner.Result{}, err
		}
	}
	for _, s := range r.stderr {
		if _, err := io.WriteString(stderr, s); err != nil {
			return runner.Result{}, err
		}
	}

	if r.started != nil {
		r.started <- job
	}
	if r.release != nil {
		select {
		case <-r.release:
		case <-ctx.Done():
			return runner.Result{}, fmt.Errorf("run task %s: %w", job.TaskID, ctx.Err())
		}
	}
	return r.result, r.err
}

// Containers implements task.Runner: the jobs running now and the planted
// orphans. The fake has a single owner.
func (r *fakeRunner) Containers(context.Context, string) ([]runner.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := slices.Collect(maps.Values(r.containers))
	slices.SortFunc(cs, func(a, b runner.Container) int { return strings.Compare(a.ID, b.ID) })
	return cs, nil
}

// Remove implements task.Runner.
func (r *fakeRunner) Remove(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.containers, id)
	r.removed = append(r.removed, id)
	return nil
}

// plant adds a container as a crashed replica would leave it.
func (r *fakeRunner) plant(c runner.Container) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.plantLocked(c)
}

func (r *fakeRunner) plantLocked(c runner.Container) {
	if r.containers == nil {
		r.containers = map[string]runner.Container{}
	}
	r.containers[c.ID] = c
}

func (r *fakeRunner) removedIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.removed)
}

func (r *fakeRunner) ran() []runner.Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.jobs)
}

// waitStarted returns the next Job a blocking fakeRunner started.
func (r *fakeRunner) waitStarted(tb testing.TB) runner.Job {
	tb.Helper()
	select {
	case job := <-r.started:
		return job
	case <-time.After(5 * time.Second):
		tb.Fatal("the runner was never started")
		return runner.Job{}
	}
}

// chatEvent is one thing the fake chat was asked to do.
type chatEvent struct {
	Kind string    // "post", "update", "notify", "output" or "close"
	View task.View // post, update
	TS   string    // post: the ts it returned
	User string    // notify
	Text string    // notify; output: the bytes written
}

// fakeChat records what taskbot shows, in order. Posted messages get the
// ts 1700000000.000001, …000002, and so on.
type fakeChat struct {
	postErr error // if set before use, PostTask fails with it

	mu     sync.Mutex
	events []chatEvent // guarded by mu
	posts  int         // guarded by mu
}

var _ task.Chat = (*fakeChat)(nil)

func (c *fakeChat) record(e chatEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e)
}

// PostTask implements task.Chat.
func (c *fakeChat) PostTask(_ context.Context, v task.View) (string, error) {
	if c.postErr != nil {
		return "", c.postErr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.posts++
	ts := fmt.Sprintf("1700000000.%06d", c.posts)
	c.events = append(c.events, chatEvent{Kind: "post", View: v, TS: ts})
	return ts, nil
}

// UpdateTask implements task.Chat.
func (c *fakeChat) UpdateTask(_ context.Context, v task.View) error {
	c.record(chatEvent{Kind: "update", View: v})
	return nil
}

// OpenOutput implements task.Chat.
func (c *fakeChat) OpenOutput(context.Context, taskbot.Task) (task.Output, error) {
	return &fakeOutput{chat: c}, nil
}

// Notify implements task.Chat.
func (c *fakeChat) Notify(_ context.Context, ch, user, text string) error {
	if ch != channel {
		return fmt.Errorf("notify in channel %s, want %s", ch, channel)
	}
	c.record(chatEvent{Kind: "notify", User: user, Text: text})
	return nil
}

func (c *fakeChat) all() []chatEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// shown returns the kind and state of every post and update, e.g.
// "post running".
func (c *fakeChat) shown() []string {
	var out []string
	for _, e := range c.all() {
		if e.Kind == "post" || e.Kind == "update" {
			out = append(out, e.Kind+" "+string(e.View.Task.State))
		}
	}
	return out
}

// views returns every posted or updated view.
func (c *fakeChat) views() []task.View {
	var out []task.View
	for _, e := range c.all() {
		if e.Kind == "post" || e.Kind == "update" {
			out = append(out, e.View)
		}
	}
	return out
}

// output returns all output written, in order.
func (c *fakeChat) output() string {
	var b strings.Builder
	for _, e := range c.all() {
		if e.Kind == "output" {
			b.WriteString(e.Text)
		}
	}
	return b.String()
}

// fakeOutput records a task's output in its chat.
type fakeOutput struct {
	chat *fakeChat
}

// Write implements task.Output.
func (o *fakeOutput) Write(p []byte) (int, error) {
	o.chat.record(chatEvent{Kind: "output", Text: string(p)})
	return len(p), nil
}

// Close implements task.Output.
func (o *fakeOutput) Close(context.Context) error {
	o.chat.record(chatEvent{Kind: "close"})
	return nil
}

// fakeDirectory knows the members of user groups. Set its fields before use.
type fakeDirectory struct {
	groups map[string][]string
	err    error // if set, every lookup fails with it
}

var _ task.Directory = (*fakeDirectory)(nil)

// GroupMembers implements task.Directory.
func (d *fakeDirectory) GroupMembers(_ context.Context, group string) ([]string, error) {
	if d.err != nil {
		return nil, d.err
	}
	return d.groups[group], nil
}
