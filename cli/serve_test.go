package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/taskbot/taskbot/internal/dockertest"
	"github.com/taskbot/taskbot/internal/fakeslack"
	"github.com/taskbot/taskbot/internal/logtest"
)

// The tokens of these tests, valid and not. Errors must never show them.
const (
	goodApp  = "xapp-1-A0TEST-1-goodappvalue"
	goodBot  = "xoxb-goodbotvalue"
	userTok  = "xoxp-user-token-value" // a user token, not a bot token
	missing  = "/nonexistent/taskbot.yaml"
	loadFail = "load config " + missing
)

// run runs taskbot with args and env, returning everything it printed
// and its error.
func run(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Run(t.Context(), args, IO{In: strings.NewReader(""), Out: &out, Err: &out,
		Getenv: func(k string) string { return env[k] }})
	return out.String(), err
}

// TestServeValidation checks serve's options before it connects anywhere:
// errors name the flag and its environment twin, never a token, and flags
// win over the environment. Options that pass get as far as loading the
// configuration, which does not exist.
func TestServeValidation(t *testing.T) {
	goodEnv := map[string]string{"SLACK_APP_TOKEN": goodApp, "SLACK_BOT_TOKEN": goodBot}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string // in the error
		not  []string // not in the error nor the output
	}{
		{"no tokens", nil, nil,
			[]string{"--app-token (SLACK_APP_TOKEN)", "--bot-token (SLACK_BOT_TOKEN)"}, nil},
		{"swapped tokens", nil, []string{"--app-token", goodBot, "--bot-token", goodApp},
			[]string{"--app-token (SLACK_APP_TOKEN)", "--bot-token (SLACK_BOT_TOKEN)"}, []string{goodBot, goodApp}},
		{"user token in env", map[string]string{"SLACK_APP_TOKEN": goodApp, "SLACK_BOT_TOKEN": userTok}, nil,
			[]string{"--bot-token (SLACK_BOT_TOKEN)"}, []string{userTok, goodApp, "--app-token"}},
		{"tokens from env", goodEnv, nil,
			[]string{loadFail}, []string{"--app-token", "--bot-token", goodApp, goodBot}},
		{"flags win over bad env", map[string]string{"SLACK_APP_TOKEN": "bad", "SLACK_BOT_TOKEN": userTok},
			[]string{"--app-token", goodApp, "--bot-token", goodBot},
			[]string{loadFail}, []string{"--app-token", "--bot-token", userTok}},
		{"flag wins over good env", goodEnv, []string{"--bot-token", userTok},
			[]string{"--bot-token (SLACK_BOT_TOKEN)"}, []string{userTok, "--app-token"}},
		{"api url without slash", goodEnv, []string{"--api-url", "http://127.0.0.1:1/api"},
			[]string{`--api-url (SLACK_API_URL): "http://127.0.0.1:1/api" must end with /`}, nil},
		{"api url from env", map[string]string{"SLACK_APP_TOKEN": goodApp, "SLACK_BOT_TOKEN": goodBot,
			"SLACK_API_URL": "http://127.0.0.1:1/api"}, nil,
			[]string{"--api-url (SLACK_API_URL)"}, nil},
		{"api url flag wins", map[string]string{"SLACK_APP_TOKEN": goodApp, "SLACK_BOT_TOKEN": goodBot,
			"SLACK_API_URL": "http://127.0.0.1:1/api"}, []string{"--api-url", "http://127.0.0.1:1/api/"},
			[]string{loadFail}, []string{"--api-url"}},
		{"no workers", goodEnv, []string{"--workers", "0"}, []string{"--workers: must be at least 1"}, nil},
		{"negative drain timeout", goodEnv, []string{"--drain-timeout", "-5s"},
			[]string{"--drain-timeout: must not be negative"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--config", missing}, tt.args...)
			out, err := run(t, tt.env, args...)
			if err == nil {
				t.Fatalf("taskbot %s succeeded", strings.Join(args, " "))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(err.Error()+out, n) {
					t.Errorf("error %q or output %q shows %q", err, out, n)
				}
			}
		})
	}
}

// TestServeConfigFromEnv checks that TASKBOT_CONFIG names the
// configuration unless --config does.
func TestServeConfigFromEnv(t *testing.T) {
	env := map[string]string{"SLACK_APP_TOKEN": goodApp, "SLACK_BOT_TOKEN": goodBot,
		"TASKBOT_CONFIG": "/from/env.yaml"}

	if _, err := run(t, env, "serve"); err == nil || !strings.Contains(err.Error(), "load config /from/env.yaml") {
		t.Errorf("serve with TASKBOT_CONFIG = %v, want it to load /from/env.yaml", err)
	}
	if _, err := run(t, env, "serve", "--config", missing); err == nil || !strings.Contains(err.Error(), loadFail) {
		t.Errorf("serve with --config and TASKBOT_CONFIG = %v, want it to load %s", err, missing)
	}
}

// TestShellNeedsUserID checks that shell refuses a --user that is not a
// Slack user ID, before it opens anything.
func TestShellNeedsUserID(t *testing.T) {
	tests := []struct {
		user string
		ok   bool // gets as far as loading the configuration
	}{
		{"U0DEMO", true},
		{"W0ENTERPRISE", true},
		{"", false},
		{"alice", false},
		{"@U0DEMO", false},
		{"u0demo", false},
		{"C0CHANNEL", false},
		{"S0GROUP", false},
		{"U0DEMO extra", false},
	}
	for _, tt := range tests {
		_, err := run(t, nil, "shell", "--config", missing, "--user", tt.user)
		switch {
		case err == nil:
			t.Errorf("shell --user %q succeeded without a configuration", tt.user)
		case tt.ok && !strings.Contains(err.Error(), loadFail):
			t.Errorf("shell --user %q = %v, want it to load the configuration", tt.user, err)
		case !tt.ok && !strings.Contains(err.Error(), "--user: "):
			t.Errorf("shell --user %q = %v, want it refused", tt.user, err)
		}
	}
}

// TestServeAgainstSlack runs taskbot serve with the embedded store against
// the Slack stand-in, through a command that runs no container, and checks
// that it answers, stops cleanly when its context ends, and never logs a
// token, even at debug level.
func TestServeAgainstSlack(t *testing.T) {
	dockertest.Client(t) // serve and shell ping the engine at start
	srv := fakeslack.New(t)
	path := writeFile(t, t.TempDir(), "taskbot.yaml", "stacks:\n  dev: {image: busybox, writers: [U0ALICE]}\n")
	env := map[string]string{"SLACK_APP_TOKEN": fakeslack.AppToken, "SLACK_BOT_TOKEN": fakeslack.BotToken,
		"SLACK_API_URL": srv.APIURL()}

	var logs logtest.Buffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--config", path, "--log-level", "debug"},
			IO{In: strings.NewReader(""), Out: &logs, Err: &logs, Getenv: func(k string) string { return env[k] }})
	}()
	wait, cancelWait := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancelWait()
	if err := srv.WaitConnected(wait); err != nil {
		cancel()
		t.Fatalf("%v; log:\n%s", err, logs.String())
	}

	_, err := srv.SendSlashCommand(t.Context(), fakeslack.SlashCommand{
		User: "U0ALICE", Channel: "C0OPS", Command: "/lock", Text: "dev upgrading"})
	if err != nil {
		t.Fatal(err)
	}
	err = srv.WaitFor(wait, func() bool {
		msgs := srv.Messages("C0OPS")
		return len(msgs) > 0 && strings.Contains(msgs[0].Text, "locked stack *dev*: upgrading")
	})
	cancel()
	if runErr := <-done; runErr != nil {
		t.Errorf("serve returned %v", runErr)
	}
	if err != nil {
		t.Errorf("no lock message: %v; channel: %+v", err, srv.Messages("C0OPS"))
	}

	for _, token := range []string{fakeslack.AppToken, fakeslack.BotToken} {
		if strings.Contains(logs.String(), token) {
			t.Errorf("serve logged a token")
		}
	}
	if !strings.Contains(logs.String(), "taskbot serving") {
		t.Errorf("serve did not log that it serves; log:\n%s", logs.String())
	}
}

// TestLogMasksTokens checks that the logger serve opens masks the tokens
// it is given, like the stacks' secrets, whatever logs them.
func TestLogMasksTokens(t *testing.T) {
	dockertest.Client(t) // serve and shell ping the engine at start
	secret := "s3cr3t-stack-value"
	path := writeFile(t, t.TempDir(), "taskbot.yaml",
		"stacks:\n  dev:\n    image: busybox\n    writers: [U0A]\n    secrets: {TOKEN: {env: DEMO_SECRET}}\n")
	var logs logtest.Buffer
	c := common{configPath: path, logFormat: "json", logLevel: "debug"}
	getenv := func(k string) string { return map[string]string{"DEMO_SECRET": secret}[k] }

	a, err := open(t.Context(), c, &logs, getenv, goodApp, goodBot, "redis-pw-value")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	a.log.WithField("token", goodBot).Debugf("dialing with %s and %s as %s", goodApp, "redis-pw-value", secret)

	for _, s := range []string{goodApp, goodBot, "redis-pw-value", secret} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("the log shows %q:\n%s", s, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "dialing with") {
		t.Errorf("the debug line was not logged:\n%s", logs.String())
	}
}

func TestRedisPassword(t *testing.T) {
	tests := []struct{ url, want string }{
		{"", ""},
		{"redis://127.0.0.1:6379/0", ""},
		{"redis://:pw1@127.0.0.1:6379/0", "pw1"},
		{"rediss://user:pw2@redis.example:6380", "pw2"},
		{"redis://user@127.0.0.1:6379", ""},
		{"unix:///run/redis.sock", ""},
		{"redis://%zz", ""},
	}
	for _, tt := range tests {
		if got := redisPassword(tt.url); got != tt.want {
			t.Errorf("redisPassword(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}
