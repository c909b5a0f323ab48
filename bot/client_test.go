package bot

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/internal/fakeslack"
	"github.com/taskbot/taskbot/internal/logtest"
	"github.com/taskbot/taskbot/mask"
	"github.com/taskbot/taskbot/task"
)

// waitLimit bounds every wait, so that a broken bot fails instead of hanging.
const waitLimit = 10 * time.Second

// The test workspace.
const (
	channel = "C0TASKS"
	alice   = "U0ALICE"
	bob     = "U0BOB"
)

// newLogger returns a JSON logger writing to a buffer the test can read.
func newLogger() (*logrus.Logger, *logtest.Buffer) {
	buf := &logtest.Buffer{}
	lg := logrus.New()
	lg.SetOutput(buf)
	lg.SetFormatter(&logrus.JSONFormatter{})
	return lg, buf
}

// newClient returns a Client of srv that flushes output every few
// milliseconds.
func newClient(tb testing.TB, srv *fakeslack.Server, m *mask.Masker, lg logrus.FieldLogger) *Client {
	tb.Helper()
	c := NewClient(ClientOptions{BotToken: fakeslack.BotToken, AppToken: fakeslack.AppToken,
		APIURL: srv.APIURL()}, m, lg)
	c.FlushInterval = 5 * time.Millisecond
	return c
}

// waitFor waits until cond holds, failing the test after waitLimit.
func waitFor(tb testing.TB, srv *fakeslack.Server, what string, cond func() bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), waitLimit)
	defer cancel()
	if err := srv.WaitFor(ctx, cond); err != nil {
		tb.Fatalf("waiting for %s: %v", what, err)
	}
}

// responseURL returns the response_url of a /task command alice sends,
// received by a plain Socket Mode client that stays connected until the
// test ends.
func responseURL(tb testing.TB, srv *fakeslack.Server) string {
	tb.Helper()
	api := slack.New(fakeslack.BotToken, slack.OptionAPIURL(srv.APIURL()),
		slack.OptionAppLevelToken(fakeslack.AppToken))
	sm := socketmode.New(api)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sm.RunContext(ctx)
	}()
	go func() {
		for range sm.Events { // nobody acks: slash commands are not redelivered
			if ctx.Err() != nil {
				return
			}
		}
	}()
	tb.Cleanup(func() { cancel(); <-done })

	env, err := srv.SendSlashCommand(tb.Context(), fakeslack.SlashCommand{
		User: alice, Channel: channel, Command: "/task", Text: "prod echo hi"})
	if err != nil {
		tb.Fatal(err)
	}
	return env.ResponseURL
}

// TestPostTaskInChannelBotCannotUse checks that a channel Slack will not
// let the bot post in gives the requester something to do, while other
// failures stay internal.
func TestPostTaskInChannelBotCannotUse(t *testing.T) {
	srv := fakeslack.New(t, fakeslack.WithoutRateLimits())
	lg, _ := newLogger()
	good := newClient(t, srv, mask.New(), lg)
	badToken := NewClient(ClientOptions{BotToken: "xoxb-wrong", APIURL: srv.APIURL()}, mask.New(), lg)

	tests := []struct {
		name    string
		c       *Client
		channel string
		want    string // the user message; "" for an internal error
	}{
		{"user ID as channel", good, alice,
			"I cannot post in <#U0ALICE>, so nothing was run. Invite me with `/invite @taskbot` and try again."},
		{"rejected token", badToken, channel, ""},
	}
	for _, tt := range tests {
		v := task.View{Task: baseTask()}
		v.Task.Channel = tt.channel
		ts, err := tt.c.PostTask(t.Context(), v)
		if err == nil {
			t.Errorf("PostTask in %s (%s) = %q, want an error", tt.channel, tt.name, ts)
			continue
		}
		msg, ok := taskbot.UserMessage(err)
		if diff := cmp.Diff(msg, tt.want); diff != "" || ok != (tt.want != "") {
			t.Errorf("UserMessage(PostTask(%s)) = %q, %v; mismatch (-got +want):\n%s", tt.name, msg, ok, diff)
		}
		var serr slack.SlackErrorResponse
		if !errors.As(err, &serr) {
			t.Errorf("PostTask(%s) error %v does not wrap Slack's error", tt.name, err)
		}
		if strings.Contains(err.Error(), "xoxb-") {
			t.Errorf("PostTask(%s) error %q shows a token", tt.name, err)
		}
	}
}

// TestUpdateTask checks that chat.update rewrites the task's message.
func TestUpdateTask(t *testing.T) {
	srv := fakeslack.New(t, fakeslack.WithoutRateLimits())
	lg, _ := newLogger()
	c := newClient(t, srv, mask.New(), lg)

	v := task.View{Task: baseTask()}
	ts, err := c.PostTask(t.Context(), v)
	if err != nil {
		t.Fatal(err)
	}
	v.Task.MessageTS, v.Task.State, v.Task.ExitCode = ts, taskbot.StateFailed, 2
	if err := c.UpdateTask(t.Context(), v); err != nil {
		t.Fatal(err)
	}

	msgs := srv.Messages(channel)
	if len(msgs) != 1 || msgs[0].Edits != 1 || !strings.Contains(msgs[0].Plain(), ":x: failed (exit code 2)") {
		t.Errorf("after UpdateTask the channel holds %+v, want the one task message, failed", msgs)
	}

	v.Task.MessageTS = "1.000001"
	if err := c.UpdateTask(t.Context(), v); err == nil {
		t.Errorf("UpdateTask of a message that does not exist succeeded")
	}
}

// TestTaskMessageThroughSlackFaults checks that the task's message is
// posted and updated despite Slack's passing faults: it is the task's
// state, and must not be left wrong for one bad answer.
func TestTaskMessageThroughSlackFaults(t *testing.T) {
	srv := fakeslack.New(t, fakeslack.WithoutRateLimits())
	lg, _ := newLogger()
	c := newClient(t, srv, mask.New(), lg)

	srv.FailNext("chat.postMessage", "service_unavailable", 1)
	v := task.View{Task: baseTask()}
	ts, err := c.PostTask(t.Context(), v)
	if err != nil {
		t.Fatalf("PostTask: %v", err)
	}
	srv.FailNext("chat.update", "internal_error", 1)
	v.Task.MessageTS, v.Task.State = ts, taskbot.StateFinished
	if err := c.UpdateTask(t.Context(), v); err != nil {
		t.Fatalf("UpdateTask: %v", err)
	}

	msgs := srv.Messages(channel)
	if len(msgs) != 1 || !strings.Contains(msgs[0].Plain(), "finished") {
		t.Errorf("the channel holds %+v, want the one task message, finished", msgs)
	}

	// Slack may have posted despite an internal_error: no second post.
	srv.FailNext("chat.postMessage", "internal_error", 1)
	if _, err := c.PostTask(t.Context(), v); err == nil {
		t.Errorf("PostTask after internal_error succeeded, want it not posted again")
	}
	if n := srv.Calls("chat.postMessage"); n != 3 {
		t.Errorf("chat.postMessage called %d times, want 3 (a fault, a post, a fault)", n)
	}
}

// TestNotify checks that Notify shows text to one user only.
func TestNotify(t *testing.T) {
	srv := fakeslack.New(t, fakeslack.WithoutRateLimits())
	lg, _ := newLogger()
	c := newClient(t, srv, mask.New(), lg)

	if err := c.Notify(t.Context(), channel, bob, "Your approval did not count."); err != nil {
		t.Fatal(err)
	}

	got := srv.Ephemerals(bob)
	if len(got) != 1 || got[0].Text != "Your approval did not count." || got[0].Channel != channel {
		t.Errorf("Ephemerals(bob) = %+v, want the notice in %s", got, channel)
	}
	if n := len(srv.Ephemerals(alice)) + len(srv.Messages(channel)); n != 0 {
		t.Errorf("Notify to bob showed %d messages to others", n)
	}
	if err := c.Notify(t.Context(), alice, bob, "x"); err == nil {
		t.Errorf("Notify in a channel that does not exist succeeded")
	}
}

// TestRespond checks that replies to a slash command reach only the
// requester unless public.
func TestRespond(t *testing.T) {
	srv := fakeslack.New(t, fakeslack.WithoutRateLimits())
	lg, _ := newLogger()
	c := newClient(t, srv, mask.New(), lg)
	url := responseURL(t, srv)

	if err := c.Respond(t.Context(), url, "only you see this", false); err != nil {
		t.Fatal(err)
	}
	if err := c.Respond(t.Context(), url, "everyone sees this", true); err != nil {
		t.Fatal(err)
	}

	eph := srv.Ephemerals(alice)
	if len(eph) != 1 || eph[0].Text != "only you see this" || eph[0].ResponseType != "ephemeral" {
		t.Errorf("Ephemerals(alice) = %+v, want the private reply", eph)
	}
	pub := srv.Messages(channel)
	if len(pub) != 1 || pub[0].Text != "everyone sees this" || pub[0].ResponseType != "in_channel" {
		t.Errorf("Messages(%s) = %+v, want the public reply", channel, pub)
	}
}

// TestGroupMembersCached checks that user groups are looked up once per
// GroupTTL.
func TestGroupMembersCached(t *testing.T) {
	srv := fakeslack.New(t, fakeslack.WithoutRateLimits())
	srv.AddUserGroup("S0OPS", alice, bob)
	lg, _ := newLogger()

	tests := []struct {
		ttl       time.Duration
		wantCalls int
	}{
		{0, 1},               // a minute
		{time.Nanosecond, 2}, // expired at once
	}
	for _, tt := range tests {
		before := srv.Calls("usergroups.users.list")
		c := NewClient(ClientOptions{BotToken: fakeslack.BotToken, APIURL: srv.APIURL(), GroupTTL: tt.ttl},
			mask.New(), lg)
		for range 2 {
			got, err := c.GroupMembers(t.Context(), "S0OPS")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, []string{alice, bob}); diff != "" {
				t.Errorf("GroupMembers(S0OPS) mismatch (-got +want):\n%s", diff)
			}
		}
		if calls := srv.Calls("usergroups.users.list") - before; calls != tt.wantCalls {
			t.Errorf("with GroupTTL %v, two GroupMembers made %d calls, want %d", tt.ttl, calls, tt.wantCalls)
		}
	}

	c := newClient(t, srv, mask.New(), lg)
	if _, err := c.GroupMembers(t.Context(), "S0NOPE"); err == nil {
		t.Errorf("GroupMembers of an unknown group succeeded")
	}
}

// TestEverythingPostedIsMasked puts secrets in every text the client
// sends and checks that Slack receives none of them, raw or escaped.
func TestEverythingPostedIsMasked(t *testing.T) {
	secrets := []string{"hunter2-s3cr3t-value", "p&ss<w>rd-9f8e"}
	secret := secrets[0] + " " + secrets[1]
	srv := fakeslack.New(t, fakeslack.WithoutRateLimits())
	lg, _ := newLogger()
	c := newClient(t, srv, mask.New(secrets...), lg)

	t.Run("task message", func(t *testing.T) {
		v := task.View{Task: baseTask(), Reasons: []string{"reason " + secret}, Emoji: "white_check_mark"}
		v.Task.Command, v.Task.Detail = "echo "+secret, "detail "+secret
		v.Task.State = taskbot.StateAwaitingApproval
		ts, err := c.PostTask(t.Context(), v)
		if err != nil {
			t.Fatal(err)
		}
		v.Task.MessageTS, v.Task.State = ts, taskbot.StateRefused
		if err := c.UpdateTask(t.Context(), v); err != nil {
			t.Fatal(err)
		}
		checkMasked(t, secrets, srv.Messages(channel))
	})
	t.Run("notice", func(t *testing.T) {
		if err := c.Notify(t.Context(), channel, bob, "notice "+secret); err != nil {
			t.Fatal(err)
		}
		checkMasked(t, secrets, srv.Ephemerals(bob))
	})
	t.Run("reply", func(t *testing.T) {
		url := responseURL(t, srv)
		if err := c.Respond(t.Context(), url, "reply "+secret, false); err != nil {
			t.Fatal(err)
		}
		if err := c.Respond(t.Context(), url, "public reply "+secret, true); err != nil {
			t.Fatal(err)
		}
		checkMasked(t, secrets, srv.Ephemerals(alice))
		checkMasked(t, secrets, srv.Messages(channel))
	})
	t.Run("output", func(t *testing.T) {
		parent := postTask(t, c)
		out, err := c.OpenOutput(t.Context(), parent)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := out.Write([]byte("output " + secret + "\n")); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		checkMasked(t, secrets, srv.Thread(channel, parent.MessageTS))
	})
}

// checkMasked fails the test for every message that shows a secret, in
// its text or blocks, raw, escaped for Slack or escaped for JSON.
func checkMasked(tb testing.TB, secrets []string, msgs []fakeslack.Message) {
	tb.Helper()
	if len(msgs) == 0 {
		tb.Fatal("no message to check")
	}
	for _, m := range msgs {
		for _, s := range secrets {
			if strings.Contains(m.Plain(), s) || strings.Contains(m.Text+string(m.Blocks), EscapeText(s)) {
				tb.Errorf("message %s shows secret %q:\n%s", m.TS, s, m.Plain())
			}
		}
		if !strings.Contains(m.Plain(), mask.Mask) {
			tb.Errorf("message %s shows no %s where the secret was:\n%s", m.TS, mask.Mask, m.Plain())
		}
	}
}
