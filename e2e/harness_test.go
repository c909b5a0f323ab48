package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/cli"
	"github.com/taskbot/taskbot/internal/dockertest"
	"github.com/taskbot/taskbot/internal/fakeslack"
	"github.com/taskbot/taskbot/internal/logtest"
	"github.com/taskbot/taskbot/internal/redistest"
	"github.com/taskbot/taskbot/store"
)

// Users of the test workspace.
const (
	alice   = "U0ALICE" // writer of every stack
	bob     = "U0BOB"   // writer of every stack
	carol   = "U0CAROL" // writer of stack "team" through the user group
	mallory = "U0MALLORY"
	opsTeam = "S0OPS"
)

// The secrets the config gives stacks, from the bot's environment and from
// a file. Tests look for them everywhere they must not be.
const (
	envSecret  = "s3cr3t-from-env-9f8e7d"
	fileSecret = "s3cr3t-from-file-1a2b3c"
)

// bot is taskbot serve, in-process, against the Slack stand-in, a real
// Redis and the real Docker engine: one replica or several.
type bot struct {
	slack   *fakeslack.Server
	store   *store.Store
	image   string
	channel string
	logs    *logtest.Buffer // every replica's log

	redisURL string
	cfgPath  string
}

// startBot starts one replica of taskbot serve with the test configuration
// and waits until it is connected to Slack.
func startBot(t testing.TB, opts ...fakeslack.Option) *bot {
	t.Helper()
	b := newBot(t, opts...)
	b.startReplica(t)
	return b
}

// newBot prepares Slack, Redis, the image and the configuration that
// replicas share.
func newBot(t testing.TB, opts ...fakeslack.Option) *bot {
	t.Helper()
	image := dockertest.BusyboxImage(t)
	redisURL := redistest.URL(t)
	slack := fakeslack.New(t, append([]fakeslack.Option{fakeslack.WithPingInterval(2 * time.Second)}, opts...)...)
	slack.AddUserGroup(opsTeam, carol)

	st, err := store.Open(t.Context(), redisURL, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &bot{slack: slack, store: st, image: image, channel: "C0TASKS", logs: &logtest.Buffer{},
		redisURL: redisURL, cfgPath: writeConfig(t, t.TempDir(), image)}
}

// startReplica starts one more taskbot serve, with extra flags, and waits
// until it is connected. The returned func stops it as SIGTERM would and
// returns what serve returned; the test's cleanup calls it too.
func (b *bot) startReplica(t testing.TB, flags ...string) (stop func() error) {
	t.Helper()
	env := map[string]string{
		"SLACK_APP_TOKEN": fakeslack.AppToken,
		"SLACK_BOT_TOKEN": fakeslack.BotToken,
		"SLACK_API_URL":   b.slack.APIURL(),
		"REDIS_URL":       b.redisURL,
		"E2E_SECRET":      envSecret,
	}
	args := append([]string{"serve", "--config", b.cfgPath, "--log-format", "text", "--log-level", "debug"}, flags...)
	want := b.slack.Connections() + 1
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- cli.Run(ctx, args, cli.IO{In: strings.NewReader(""), Out: b.logs, Err: b.logs,
			Getenv: func(k string) string { return env[k] }})
	}()

	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("taskbot serve returned %v", err)
		}
		if t.Failed() {
			t.Logf("taskbot log:\n%s", b.logs.String())
		}
	})

	b.wait(t, "taskbot to connect to Slack", func() bool { return b.slack.Connections() >= want })
	return stop
}

// writeConfig writes the test configuration and its policies into dir.
func writeConfig(t testing.TB, dir, image string) string {
	t.Helper()
	secretFile := filepath.Join(dir, "db-password")
	mustWrite(t, secretFile, fileSecret+"\n")
	policies, err := filepath.Abs("../examples/policies")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`stacks:
  dev:
    image: %[1]s
    init: echo initialising; touch .initialised
    workdir: /tmp
    writers: [%[2]s, %[3]s]
    labels: {env: dev}
    env: {GREETING: hello}
    secrets:
      API_TOKEN: {env: E2E_SECRET}
      DB_PASSWORD: {file: db-password}
    timeout: 1m
  prod:
    image: %[1]s
    writers: [%[2]s, %[3]s]
    labels: {env: production}
  locked:
    image: %[1]s
    writers: [%[2]s, %[3]s]
  team:
    image: %[1]s
    writers: [%[2]s, %[4]s]
  bench:
    image: %[1]s
    writers: [%[2]s]
policies: %[5]s
approval: {emoji: white_check_mark}
`, image, alice, bob, opsTeam, policies)
	path := filepath.Join(dir, "taskbot.yaml")
	mustWrite(t, path, cfg)
	return path
}

func mustWrite(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// slash sends a slash command as Slack would, text already escaped, and
// checks that taskbot acked it.
func (b *bot) slash(t testing.TB, user, cmd, text string) {
	t.Helper()
	env, err := b.slack.SendSlashCommand(t.Context(), fakeslack.SlashCommand{
		User: user, Channel: b.channel, Command: cmd, Text: text})
	if err != nil {
		t.Fatalf("send %s %s: %v", cmd, text, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if _, err := env.WaitAck(ctx); err != nil {
		t.Fatalf("%s %s was not acked within Slack's 3 s: %v", cmd, text, err)
	}
}

// waitTask waits until a task message whose command is command shows a
// final state, and returns it.
func (b *bot) waitTask(t testing.TB, command string) fakeslack.Message {
	t.Helper()
	var found fakeslack.Message
	b.wait(t, "task "+command+" to end", func() bool {
		m, ok := b.taskMessage(command)
		if ok && ended(m) {
			found = m
			return true
		}
		return false
	})
	return found
}

// taskMessage finds the top-level task message that shows command.
func (b *bot) taskMessage(command string) (fakeslack.Message, bool) {
	for _, m := range b.slack.Messages(b.channel) {
		if m.ThreadTS == "" && strings.Contains(m.Plain(), "```"+command+"```") {
			return m, true
		}
	}
	return fakeslack.Message{}, false
}

func ended(m fakeslack.Message) bool {
	p := m.Plain()
	return strings.Contains(p, "finished") || strings.Contains(p, "failed") || strings.Contains(p, "refused")
}

// output returns the task's output as shown in its thread.
func (b *bot) output(m fakeslack.Message) string {
	var out strings.Builder
	for _, r := range b.slack.Thread(b.channel, m.TS) {
		out.WriteString(strings.Trim(r.Plain(), "`"))
	}
	return out.String()
}

// ephemeral waits for an ephemeral reply to user containing want.
func (b *bot) ephemeral(t testing.TB, user, want string) {
	t.Helper()
	b.wait(t, fmt.Sprintf("an ephemeral reply to %s containing %q", user, want), func() bool {
		return b.hasEphemeral(user, want)
	})
}

func (b *bot) hasEphemeral(user, want string) bool {
	for _, m := range b.slack.Ephemerals(user) {
		if strings.Contains(m.Plain(), want) {
			return true
		}
	}
	return false
}

func (b *bot) wait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := b.slack.WaitFor(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v\nchannel: %s\nlog:\n%s", what, err, b.dump(), b.logs.String())
	}
}

func (b *bot) dump() string {
	var s strings.Builder
	for _, m := range b.slack.Messages(b.channel) {
		fmt.Fprintf(&s, "\n  [%s thread=%s] %s", m.TS, m.ThreadTS, m.Plain())
	}
	return s.String()
}

// events returns the audit events of the task with the given ID.
func (b *bot) events(t testing.TB, taskID string) []taskbot.Event {
	t.Helper()
	all, err := b.store.Events(t.Context(), 10000)
	if err != nil {
		t.Fatal(err)
	}
	var mine []taskbot.Event
	for _, ev := range all {
		if ev.TaskID == taskID {
			mine = append(mine, ev)
		}
	}
	return mine
}

func eventTypes(events []taskbot.Event) []taskbot.EventType {
	types := make([]taskbot.EventType, len(events))
	for i, ev := range events {
		types[i] = ev.Type
	}
	return types
}
