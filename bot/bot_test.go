package bot

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/command"
	"github.com/taskbot/taskbot/internal/fakeslack"
	"github.com/taskbot/taskbot/internal/logtest"
	"github.com/taskbot/taskbot/mask"
	"github.com/taskbot/taskbot/task"
)

// fakeTasks records what the bot hands to the task lifecycle and answers
// with handle, when set.
type fakeTasks struct {
	handle func(ctx context.Context, req task.Request) (task.Reply, error)

	mu        sync.Mutex
	requests  []task.Request  // guarded by mu
	reactions []task.Reaction // guarded by mu
}

var _ Tasks = (*fakeTasks)(nil)

func (f *fakeTasks) Handle(ctx context.Context, req task.Request) (task.Reply, error) {
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	if f.handle == nil {
		return task.Reply{}, nil
	}
	return f.handle(ctx, req)
}

func (f *fakeTasks) React(_ context.Context, r task.Reaction) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reactions = append(f.reactions, r)
	return nil
}

func (f *fakeTasks) Requests() []task.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]task.Request(nil), f.requests...)
}

func (f *fakeTasks) Reactions() []task.Reaction {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]task.Reaction(nil), f.reactions...)
}

// fakeDeduper remembers keys in memory, as the store does in Redis, unless
// err or seen say otherwise.
type fakeDeduper struct {
	err  error // returned for every key, when set
	seen bool  // every key counts as seen before

	mu   sync.Mutex
	keys map[string]bool // guarded by mu
}

var _ Deduper = (*fakeDeduper)(nil)

func (f *fakeDeduper) FirstDelivery(_ context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("ttl %v for key %s", ttl, key)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keys == nil {
		f.keys = map[string]bool{}
	}
	first := !f.keys[key] && !f.seen
	f.keys[key] = true
	return first, f.err
}

func (f *fakeDeduper) Asked(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keys[key]
}

// running is a Bot running against a fake Slack.
type running struct {
	srv    *fakeslack.Server
	client *Client
	logs   *logtest.Buffer
	stop   func() error // cancels Run's context and returns what Run returned
}

// runBot runs a Bot over tasks and dedupe until stop or the test's end,
// and waits until it is connected.
func runBot(t *testing.T, tasks Tasks, dedupe Deduper, o Options) *running {
	t.Helper()
	return runBotMasking(t, mask.New(), tasks, dedupe, o)
}

// runBotMasking is runBot with a client that masks m's secrets.
func runBotMasking(t *testing.T, m *mask.Masker, tasks Tasks, dedupe Deduper, o Options) *running {
	t.Helper()
	srv := fakeslack.New(t, fakeslack.WithoutRateLimits(), fakeslack.WithRetryDelay(200*time.Millisecond))
	lg, logs := newLogger()
	client := newClient(t, srv, m, lg)
	b := New(client, tasks, dedupe, lg, o)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	r := &running{srv: srv, client: client, logs: logs, stop: sync.OnceValue(func() error {
		cancel()
		return <-done
	})}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("Run returned %v", err)
		}
		if t.Failed() {
			t.Logf("bot log:\n%s", logs)
		}
	})

	wait, cancelWait := context.WithTimeout(t.Context(), waitLimit)
	defer cancelWait()
	if err := srv.WaitConnected(wait); err != nil {
		t.Fatal(err)
	}
	return r
}

// slash sends a slash command from alice in the test channel, text
// escaped as Slack sends it, and checks that the bot acked it in time.
func (r *running) slash(t *testing.T, cmd, text string) *fakeslack.Envelope {
	t.Helper()
	env, err := r.srv.SendSlashCommand(t.Context(), fakeslack.SlashCommand{
		User: alice, Channel: channel, Command: cmd, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if _, err := env.WaitAck(ctx); err != nil {
		t.Fatalf("%s %s was not acked within Slack's 3 s: %v", cmd, text, err)
	}
	return env
}

// reply waits for the next reply alice sees, ephemeral or in the channel,
// after the n she already has.
func (r *running) reply(t *testing.T, n int) fakeslack.Message {
	t.Helper()
	var all []fakeslack.Message
	waitFor(t, r.srv, "a reply to alice", func() bool {
		all = append(r.srv.Ephemerals(alice), r.srv.Messages(channel)...)
		return len(all) > n
	})
	return all[n]
}

// TestSlashCommandHandled checks that a slash command is decoded, parsed
// and handed over with who sent it where, and that the reply reaches the
// requester alone unless it is public.
func TestSlashCommandHandled(t *testing.T) {
	tests := []struct {
		name     string
		reply    task.Reply
		wantType string
	}{
		{"ephemeral", task.Reply{Text: "Task *7* queued for <@U0ALICE>."}, "ephemeral"},
		{"public", task.Reply{Text: ":lock: <@U0ALICE> locked stack *prod*.", Public: true}, "in_channel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tasks := &fakeTasks{handle: func(context.Context, task.Request) (task.Reply, error) {
				return tt.reply, nil
			}}
			r := runBot(t, tasks, &fakeDeduper{}, Options{})

			r.slash(t, "/task", "prod --skip-init echo a &amp;&amp; b &lt;x&gt; &amp;lt; <@U0BOB|bob> <#C0X|ops>")
			got := r.reply(t, 0)

			if got.Text != tt.reply.Text || got.ResponseType != tt.wantType {
				t.Errorf("reply = %q (%s), want %q (%s)", got.Text, got.ResponseType, tt.reply.Text, tt.wantType)
			}
			want := []task.Request{{User: alice, Channel: channel, Command: command.Command{
				Name: "task", Stack: "prod", SkipInit: true, Text: "echo a && b <x> &lt; @bob #ops"}}}
			if diff := cmp.Diff(tasks.Requests(), want); diff != "" {
				t.Errorf("Handle requests mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

// TestSlashCommandAckedBeforeWork checks that the ack does not wait for
// the handler: Slack gives up after 3 s, and a task runs far longer.
func TestSlashCommandAckedBeforeWork(t *testing.T) {
	release := make(chan struct{})
	tasks := &fakeTasks{handle: func(ctx context.Context, _ task.Request) (task.Reply, error) {
		waitRelease(t, release)
		return task.Reply{Text: "done"}, nil
	}}
	r := runBot(t, tasks, &fakeDeduper{}, Options{})

	r.slash(t, "/task", "prod sleep 600") // fails unless acked while the handler blocks
	waitFor(t, r.srv, "the handler to start", func() bool { return len(tasks.Requests()) == 1 })
	close(release)

	if got := r.reply(t, 0); got.Text != "done" {
		t.Errorf("reply = %q, want %q", got.Text, "done")
	}
}

// waitRelease blocks a handler until release is closed, or the test ends:
// a test that fails first must not leave Run waiting for it forever.
func waitRelease(t *testing.T, release <-chan struct{}) {
	select {
	case <-release:
	case <-t.Context().Done():
	}
}

// refPattern is the reply to an internal error.
var refPattern = regexp.MustCompile(
	`^Something went wrong \(ref ([0-9a-f]{8})\)\. An operator can find the details in taskbot's log\.$`)

// TestSlashCommandErrors checks what the requester sees of an error: the
// sentence of a *taskbot.Error, and only a reference for anything else,
// whose details are in the log under that reference.
func TestSlashCommandErrors(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		want     string // "" for a reference reply
		internal string // what the log must hold for a reference reply
	}{
		{"user error", taskbot.Errorf(taskbot.EConflict, "Stack *prod* is locked by <@U0BOB>."),
			"Stack *prod* is locked by <@U0BOB>.", ""},
		{"wrapped user error", fmt.Errorf("lock prod: %w", taskbot.Errorf(taskbot.EForbidden, "Only writers may.")),
			"Only writers may.", ""},
		{"internal error", fmt.Errorf("acquire lock %q: %w", "prod", errors.New("dial unix /run/redis.sock: refused")),
			"", `acquire lock "prod": dial unix /run/redis.sock: refused`},
		{"internal code", taskbot.Errorf(taskbot.EInternal, "store invariant broken"),
			"", "store invariant broken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tasks := &fakeTasks{handle: func(context.Context, task.Request) (task.Reply, error) {
				return task.Reply{Text: "ignored on error", Public: true}, tt.err
			}}
			r := runBot(t, tasks, &fakeDeduper{}, Options{})

			r.slash(t, "/lock", "prod")
			got := r.reply(t, 0)

			if got.ResponseType != "ephemeral" {
				t.Errorf("error reply %q is %s, want ephemeral", got.Text, got.ResponseType)
			}
			if tt.want != "" {
				if got.Text != tt.want {
					t.Errorf("reply = %q, want %q", got.Text, tt.want)
				}
				return
			}
			m := refPattern.FindStringSubmatch(got.Text)
			if m == nil {
				t.Fatalf("reply = %q, want one matching %s", got.Text, refPattern)
			}
			if strings.Contains(got.Text, tt.internal) {
				t.Errorf("reply %q shows the internal error", got.Text)
			}
			checkLogged(t, r.logs, m[1], tt.internal)
		})
	}
}

// checkLogged fails the test unless an error line of the log holds ref and
// an error containing want, with the requester.
func checkLogged(tb testing.TB, logs *logtest.Buffer, ref, want string) {
	tb.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			tb.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if line["ref"] != ref {
			continue
		}
		errText, _ := line["error"].(string)
		if line["level"] != "error" || !strings.Contains(errText, want) || line["user"] != alice {
			tb.Errorf("log line for ref %s = %v, want an error line for %s with error %q", ref, line, alice, want)
		}
		return
	}
	tb.Errorf("no log line has ref %s; log:\n%s", ref, logs)
}

// TestSlashCommandNotHandled checks the commands that never reach the
// task lifecycle: text Slack would not send, text that does not parse,
// and deliveries already handled.
func TestSlashCommandNotHandled(t *testing.T) {
	tests := []struct {
		name   string
		cmd    string
		text   string
		dedupe *fakeDeduper
		want   []string // what the reply says; nil for no reply
	}{
		{"undecodable", "/task", "prod echo a < b", &fakeDeduper{}, []string{
			"I could not read that command: it has a '&lt;' without a closing '&gt;'. " +
				"Type it again with that part as plain text.\n" + command.Usage("task")}},
		{"unparsable", "/task", "--skip-init echo hi", &fakeDeduper{},
			[]string{"name the stack first", command.Usage("task")}},
		{"bad unlock", "/unlock", "prod now", &fakeDeduper{},
			[]string{"/unlock takes only a stack name", command.Usage("unlock")}},
		{"seen before", "/task", "prod echo hi", &fakeDeduper{seen: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tasks := &fakeTasks{}
			r := runBot(t, tasks, tt.dedupe, Options{})

			env := r.slash(t, tt.cmd, tt.text)
			if err := r.stop(); err != nil { // waits for the handler
				t.Fatal(err)
			}

			if n := len(tasks.Requests()); n != 0 {
				t.Errorf("Handle was called %d times, want none", n)
			}
			if !tt.dedupe.Asked("slash:" + env.ID) {
				t.Errorf("the deduper was not asked about slash:%s", env.ID)
			}
			replies := r.srv.Ephemerals(alice)
			if tt.want == nil {
				if len(replies) != 0 {
					t.Errorf("replies = %+v, want none", replies)
				}
				return
			}
			if len(replies) != 1 {
				t.Fatalf("replies = %+v, want one", replies)
			}
			for _, w := range tt.want {
				if !strings.Contains(replies[0].Text, w) {
					t.Errorf("reply %q lacks %q", replies[0].Text, w)
				}
			}
			if strings.Contains(replies[0].Text, ErrUndecodable.Error()) {
				t.Errorf("reply %q shows an internal error", replies[0].Text)
			}
		})
	}
}

// TestUsageErrorsMasked checks that a command that does not parse and
// holds a secret is refused without quoting it: quoted with %q and escaped,
// the secret would be past a masker applied afterwards, and even masked the
// quote would confirm a guessed secret.
func TestUsageErrorsMasked(t *testing.T) {
	const secret = `pa&ss"wd-1<23`
	const want = "I could not read that command."
	tests := []struct{ cmd, text string }{
		{"/unlock", "dev " + secret},
		{"/task", "dev --" + secret + " ls"},
		{"/task", secret + " ls"},
		{"/lock", secret + " reason"},
	}
	tasks := &fakeTasks{}
	r := runBotMasking(t, mask.New(secret), tasks, &fakeDeduper{}, Options{})

	for i, tt := range tests {
		r.slash(t, tt.cmd, EscapeText(tt.text))
		got := r.reply(t, i)
		if !strings.Contains(got.Text, want) || strings.Contains(got.Text+got.Plain(), "wd-1") {
			t.Errorf("reply to %s %s = %q, want %q and no part of the secret", tt.cmd, tt.text, got.Text, want)
		}
	}
	if n := len(tasks.Requests()); n != 0 {
		t.Errorf("Handle was called %d times, want none", n)
	}
}

// TestSecretInCommandHandedOver checks that a /task command holding a
// secret reaches the task lifecycle as typed: it refuses such commands by
// comparing the command with its masked form.
func TestSecretInCommandHandedOver(t *testing.T) {
	const secret = `pa&ss"wd-1<23`
	tasks := &fakeTasks{}
	r := runBotMasking(t, mask.New(secret), tasks, &fakeDeduper{}, Options{})

	r.slash(t, "/task", EscapeText("dev echo "+secret))
	waitFor(t, r.srv, "the command to be handed over", func() bool { return len(tasks.Requests()) == 1 })

	if got := tasks.Requests()[0].Command.Text; got != "echo "+secret {
		t.Errorf("Handle got command %q, want %q", got, "echo "+secret)
	}
}

// TestDeduperError checks that a failing deduper gets a reference reply,
// not a run of the command.
func TestDeduperError(t *testing.T) {
	tasks := &fakeTasks{}
	r := runBot(t, tasks, &fakeDeduper{err: errors.New("redis down")}, Options{})

	r.slash(t, "/task", "prod echo hi")
	got := r.reply(t, 0)

	m := refPattern.FindStringSubmatch(got.Text)
	if m == nil {
		t.Fatalf("reply = %q, want one matching %s", got.Text, refPattern)
	}
	checkLogged(t, r.logs, m[1], "redis down")
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(tasks.Requests()); n != 0 {
		t.Errorf("Handle was called %d times with the deduper down, want none", n)
	}
}

// TestReactions checks that people's reactions reach the task lifecycle
// once per event, and the bot's own reactions do not.
func TestReactions(t *testing.T) {
	tasks := &fakeTasks{}
	dedupe := &fakeDeduper{}
	r := runBot(t, tasks, dedupe, Options{})
	ts := "1700000000.000100"

	own, err := r.srv.React(t.Context(), fakeslack.BotUserID, channel, ts, "eyes")
	if err != nil {
		t.Fatal(err)
	}
	env, err := r.srv.React(t.Context(), bob, channel, ts, "white_check_mark")
	if err != nil {
		t.Fatal(err)
	}
	toned, err := r.srv.React(t.Context(), alice, channel, ts, "+1::skin-tone-3")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.srv, "the reactions to be handled", func() bool { return len(tasks.Reactions()) > 1 })
	for _, e := range []*fakeslack.Envelope{own, env, toned} {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		if _, err := e.WaitAck(ctx); err != nil {
			t.Errorf("reaction event %s was not acked: %v", e.EventID, err)
		}
		cancel()
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	want := []task.Reaction{
		{User: bob, Channel: channel, TS: ts, Emoji: "white_check_mark"},
		{User: alice, Channel: channel, TS: ts, Emoji: "+1"}, // the skin tone dropped
	}
	byUser := func(a, b task.Reaction) bool { return a.User < b.User }
	if diff := cmp.Diff(tasks.Reactions(), want, cmpopts.SortSlices(byUser)); diff != "" {
		t.Errorf("React calls mismatch (-got +want):\n%s", diff)
	}
	if !dedupe.Asked("event:" + env.EventID) {
		t.Errorf("the reaction was not deduped by its event_id %s", env.EventID)
	}
}

// TestReactionSeenBefore checks that a reaction the deduper has seen is
// not handed over again.
func TestReactionSeenBefore(t *testing.T) {
	tasks := &fakeTasks{}
	dedupe := &fakeDeduper{seen: true}
	r := runBot(t, tasks, dedupe, Options{})

	env, err := r.srv.React(t.Context(), bob, channel, "1700000000.000100", "white_check_mark")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.srv, "the deduper to be asked", func() bool { return dedupe.Asked("event:" + env.EventID) })
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	if n := len(tasks.Reactions()); n != 0 {
		t.Errorf("React was called %d times for a redelivered event, want none", n)
	}
}

// TestHandlerPanic checks that a panicking handler is logged and the bot
// goes on handling commands.
func TestHandlerPanic(t *testing.T) {
	tasks := &fakeTasks{handle: func(_ context.Context, req task.Request) (task.Reply, error) {
		if req.Command.Text == "panic" {
			panic("boom")
		}
		return task.Reply{Text: "still here"}, nil
	}}
	r := runBot(t, tasks, &fakeDeduper{}, Options{Workers: 1})

	r.slash(t, "/task", "prod panic")
	r.slash(t, "/task", "prod echo hi")

	if got := r.reply(t, 0); got.Text != "still here" {
		t.Errorf("reply after the panic = %q, want %q", got.Text, "still here")
	}
	waitFor(t, r.srv, "the panic to be logged", func() bool {
		return strings.Contains(r.logs.String(), `"msg":"handler panicked"`)
	})
	if !strings.Contains(r.logs.String(), `"panic":"boom"`) {
		t.Errorf("the log does not say what panicked:\n%s", r.logs)
	}
}

// TestQuickCommandsNotHeldUp checks that commands that cannot run a task
// are answered while every worker for tasks is busy running one.
func TestQuickCommandsNotHeldUp(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	tasks := &fakeTasks{handle: func(_ context.Context, req task.Request) (task.Reply, error) {
		if req.Command.Name == "task" && !req.Command.Help {
			waitRelease(t, release)
		}
		return task.Reply{Text: "answered " + req.Command.Name}, nil
	}}
	r := runBot(t, tasks, &fakeDeduper{}, Options{Workers: 1})
	r.slash(t, "/task", "prod terraform apply")
	waitFor(t, r.srv, "the task to start", func() bool { return len(tasks.Requests()) == 1 })

	r.slash(t, "/lock", "")
	r.slash(t, "/task", "help")

	waitFor(t, r.srv, "the quick commands to be answered", func() bool { return len(r.srv.Ephemerals(alice)) == 2 })
}

// TestRunDrains checks that Run, once its context ends, waits for the
// handler that is still running and lets it answer.
func TestRunDrains(t *testing.T) {
	release := make(chan struct{})
	tasks := &fakeTasks{handle: func(ctx context.Context, _ task.Request) (task.Reply, error) {
		waitRelease(t, release)
		return task.Reply{Text: "finished after shutdown began"}, ctx.Err()
	}}
	r := runBot(t, tasks, &fakeDeduper{}, Options{})
	r.slash(t, "/task", "prod terraform apply")
	waitFor(t, r.srv, "the handler to start", func() bool { return len(tasks.Requests()) == 1 })

	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()
	waitFor(t, r.srv, "the bot to disconnect", func() bool { return r.srv.Connections() == 0 })
	select {
	case err := <-stopped:
		t.Fatalf("Run returned %v while a handler was running", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)

	if err := <-stopped; err != nil {
		t.Fatalf("Run returned %v", err)
	}
	eph := r.srv.Ephemerals(alice)
	if len(eph) != 1 || eph[0].Text != "finished after shutdown began" {
		t.Errorf("replies after the drain = %+v, want the handler's reply", eph)
	}
}

// TestRunCancelsAfterDrainTimeout checks that a handler still running
// after DrainTimeout has its context cancelled, and Run then returns.
func TestRunCancelsAfterDrainTimeout(t *testing.T) {
	cancelled := make(chan error, 1)
	tasks := &fakeTasks{handle: func(ctx context.Context, _ task.Request) (task.Reply, error) {
		<-ctx.Done()
		cancelled <- ctx.Err()
		return task.Reply{}, ctx.Err()
	}}
	r := runBot(t, tasks, &fakeDeduper{}, Options{DrainTimeout: 50 * time.Millisecond})
	r.slash(t, "/task", "prod sleep 600")
	waitFor(t, r.srv, "the handler to start", func() bool { return len(tasks.Requests()) == 1 })

	if err := r.stop(); err != nil {
		t.Fatalf("Run returned %v", err)
	}

	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the handler's context ended with %v, want context.Canceled", err)
		}
	default:
		t.Errorf("Run returned before the handler was cancelled and ended")
	}
	if !strings.Contains(r.logs.String(), "drain timeout passed") {
		t.Errorf("the log does not say the drain timed out:\n%s", r.logs)
	}
}

// TestRunEndsOutputs checks that no task output is streamed after Run
// returns, not even output that was never closed, and none opened later.
func TestRunEndsOutputs(t *testing.T) {
	r := runBot(t, &fakeTasks{}, &fakeDeduper{}, Options{})
	tk := postTask(t, r.client)
	out, err := r.client.OpenOutput(t.Context(), tk)
	if err != nil {
		t.Fatal(err)
	}
	write(t, out, "never closed\n")

	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	select {
	case <-out.(*threadOutput).done:
	default:
		t.Errorf("the output's loop still runs after Run returned")
	}
	if _, err := r.client.OpenOutput(t.Context(), tk); !errors.Is(err, errShutDown) {
		t.Errorf("OpenOutput after Run returned = %v, want errShutDown", err)
	}
}

// TestRunRejectedToken checks that Run fails at once, without showing the
// token, when Slack rejects the bot token.
func TestRunRejectedToken(t *testing.T) {
	srv := fakeslack.New(t)
	lg, _ := newLogger()
	token := "xoxb-not-the-right-one"
	c := NewClient(ClientOptions{BotToken: token, AppToken: fakeslack.AppToken, APIURL: srv.APIURL()}, mask.New(), lg)

	err := New(c, &fakeTasks{}, &fakeDeduper{}, lg, Options{}).Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "invalid_auth") {
		t.Errorf("Run with a rejected token = %v, want invalid_auth", err)
	}
	if err != nil && strings.Contains(err.Error(), token) {
		t.Errorf("Run error %q shows the token", err)
	}
}
