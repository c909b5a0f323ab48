package task_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/sirupsen/logrus"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/command"
	"github.com/taskbot/taskbot/internal/logtest"
	"github.com/taskbot/taskbot/mask"
	"github.com/taskbot/taskbot/policy"
	"github.com/taskbot/taskbot/runner"
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
	owner   = "test-deployment" // the Service's Owner
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

// The failures tests inject.
var (
	errDirectory = errors.New("usergroups.users.list: ratelimited")  // of the directory
	errAudit     = errors.New("XADD: OOM command not allowed")       // of the audit log
	errChat      = errors.New("chat.postMessage: channel_not_found") // of posting a message
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

// env is one Service with its real store and policies and its fakes.
type env struct {
	svc    *task.Service
	store  *failingStore
	runner *fakeRunner
	chat   *fakeChat
	dir    *fakeDirectory
	logs   *logtest.Buffer
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
		logs:   &logtest.Buffer{},
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
		Owner:     owner,
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

// logLine returns the first line logged with the message msg, or fails.
func (e *env) logLine(tb testing.TB, msg string) string {
	tb.Helper()
	for line := range strings.Lines(e.logs.String()) {
		if strings.Contains(line, `msg="`+msg+`"`) {
			return line
		}
	}
	tb.Fatalf("log does not say %q:\n%s", msg, e.logs.String())
	return ""
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
