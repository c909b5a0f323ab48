package task_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/command"
	"github.com/taskbot/taskbot/mask"
	"github.com/taskbot/taskbot/policy"
	"github.com/taskbot/taskbot/runner"
	"github.com/taskbot/taskbot/store"
	"github.com/taskbot/taskbot/task"
)

// The people of the tests. Alice and Bob write prod, Alice and Carol write
// dev, Dave writes prod through the user group ops, Eve writes nothing.
const (
	alice = "UALICE"
	bob   = "UBOB"
	carol = "UCAROL"
	dave  = "UDAVE"
	eve   = "UEVE"
	ops   = "SOPS"

	channel = "C1"
	emoji   = "white_check_mark"
)

// The secrets of stack prod.
const (
	dbPassword = "hunter2-s3cret"
	apiToken   = "tok-abc123xyz"
)

var secrets = []string{dbPassword, apiToken}

// examplePolicies denies destroying production and holds terraform taint
// for approval.
const examplePolicies = "../examples/policies"

// The reasons examplePolicies gives.
const (
	destroyReason = `Destroying anything on the production stack "prod" is not allowed; ask an operator.`
	taintReason   = "terraform taint needs approval: the next apply destroys and recreates the resource."
)

func testStacks() map[string]*taskbot.Stack {
	return map[string]*taskbot.Stack{
		"prod": {
			Name:    "prod",
			Image:   "example/terraform:1.9",
			Init:    "terraform init",
			Workdir: "/work",
			Writers: []string{alice, bob, ops},
			Labels:  map[string]string{"env": "production"},
			Env:     map[string]string{"TF_IN_AUTOMATION": "1", "AWS_REGION": "eu-west-1"},
			Secrets: map[string]taskbot.Secret{"DB_PASSWORD": dbPassword, "API_TOKEN": apiToken},
			Timeout: 10 * time.Minute,
		},
		"dev": {
			Name:    "dev",
			Image:   "example/dev:latest",
			Writers: []string{alice, carol},
		},
	}
}

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

	mu   sync.Mutex
	jobs []runner.Job // guarded by mu
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
func (r *fakeRunner) Run(ctx context.Context, job runner.Job, stdout, stderr io.Writer) (runner.Result, error) {
	r.mu.Lock()
	r.jobs = append(r.jobs, job)
	r.mu.Unlock()

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

// syncBuffer is a log destination that goroutines may write while a test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one Service with its real store and policies and its fakes.
type env struct {
	svc    *task.Service
	store  *failingStore
	runner *fakeRunner
	chat   *fakeChat
	dir    *fakeDirectory
	logs   *syncBuffer
}

// newEnv returns a Service over a fresh store, the example policies and a
// runner that succeeds. Tests change its fields before they use it.
func newEnv(tb testing.TB) *env {
	tb.Helper()
	e := &env{
		store:  newStore(tb),
		runner: &fakeRunner{result: runner.Result{Phase: runner.PhasePerform}},
		chat:   &fakeChat{},
		dir:    &fakeDirectory{groups: map[string][]string{ops: {dave}}},
		logs:   &syncBuffer{},
	}
	e.svc = e.replica(tb, e.runner)
	return e
}

// replica returns another Service that shares e's store, chat and directory,
// as a second replica of the bot would, but runs tasks with r.
func (e *env) replica(tb testing.TB, r task.Runner) *task.Service {
	tb.Helper()
	log := logrus.New()
	log.SetOutput(e.logs)
	log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	log.SetLevel(logrus.DebugLevel)

	svc := &task.Service{
		Stacks:    testStacks(),
		Emoji:     emoji,
		Store:     e.store,
		Policy:    loadPolicy(tb, examplePolicies),
		Runner:    r,
		Directory: e.dir,
		Chat:      e.chat,
		Masker:    mask.New(secrets...),
		Log:       log,
	}
	if err := svc.Validate(); err != nil {
		tb.Fatalf("Validate: %v", err)
	}
	return svc
}

// do parses and handles one slash command, as the bot does.
func (e *env) do(tb testing.TB, user, name, text string) (task.Reply, error) {
	tb.Helper()
	return do(tb, e.svc, user, name, text)
}

func do(tb testing.TB, svc *task.Service, user, name, text string) (task.Reply, error) {
	tb.Helper()
	cmd, err := command.Parse(name, text)
	if err != nil {
		tb.Fatalf("Parse(%q, %q): %v", name, text, err)
	}
	return svc.Handle(context.Background(), task.Request{User: user, Channel: channel, Command: cmd})
}

// doAsync handles a slash command in a goroutine and returns where its error
// arrives.
func (e *env) doAsync(tb testing.TB, user, name, text string) <-chan error {
	tb.Helper()
	cmd, err := command.Parse(name, text)
	if err != nil {
		tb.Fatalf("Parse(%q, %q): %v", name, text, err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := e.svc.Handle(context.Background(), task.Request{User: user, Channel: channel, Command: cmd})
		errc <- err
	}()
	return errc
}

// receive returns the error that arrives on errc.
func receive(tb testing.TB, errc <-chan error) error {
	tb.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(5 * time.Second):
		tb.Fatal("the request never returned")
		return nil
	}
}

// loadPolicy loads the policies in dir.
func loadPolicy(tb testing.TB, dir string) *policy.Engine {
	tb.Helper()
	eng, err := policy.Load(context.Background(), dir)
	if err != nil {
		tb.Fatalf("policy.Load(%s): %v", dir, err)
	}
	return eng
}

// writePolicy loads the Rego v1 module src, written to a fresh directory.
func writePolicy(tb testing.TB, src string) *policy.Engine {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "task.rego"), []byte(src), 0o600); err != nil {
		tb.Fatal(err)
	}
	return loadPolicy(tb, dir)
}

// userError returns err as a *taskbot.Error with the given code, or fails.
func userError(tb testing.TB, err error, code taskbot.Code) *taskbot.Error {
	tb.Helper()
	var uerr *taskbot.Error
	if !errors.As(err, &uerr) {
		tb.Fatalf("error = %v (%T), want a *taskbot.Error with code %s", err, err, code)
	}
	if uerr.Code != code {
		tb.Fatalf("error code = %s (%q), want %s", uerr.Code, uerr.Message, code)
	}
	return uerr
}

// waitUntil polls cond until it holds, or fails after a generous deadline.
func waitUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("gave up waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eventTypes returns the types of evs, in order.
func eventTypes(evs []taskbot.Event) []taskbot.EventType {
	out := make([]taskbot.EventType, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

// fields builds event fields from key, value pairs.
func fields(kv ...string) []taskbot.Field {
	var out []taskbot.Field
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, taskbot.Field{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

// The options that compare events and tasks without what the store or the
// clock chose.
var (
	ignoreEventIDTime = cmpopts.IgnoreFields(taskbot.Event{}, "ID", "Time")
	ignoreTaskTimes   = cmpopts.IgnoreFields(taskbot.Task{}, "Created", "Updated")
)

// eventText returns everything an event holds, for searching it.
func eventText(ev taskbot.Event) string {
	parts := []string{string(ev.Type), ev.TaskID, ev.Stack, ev.User}
	for _, f := range ev.Fields {
		parts = append(parts, f.Key, f.Value)
	}
	return strings.Join(parts, "\x00")
}
