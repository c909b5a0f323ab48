package fakeslack_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/slack-go/slack"

	"github.com/taskbot/taskbot/internal/fakeslack"
)

// plains returns Plain of every message.
func plains(msgs []fakeslack.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Plain())
	}
	return out
}

// post posts a message and returns its ts, failing the test on error.
func post(t *testing.T, api *slack.Client, channel string, opts ...slack.MsgOption) string {
	t.Helper()
	_, ts, err := api.PostMessage(channel, opts...)
	if err != nil {
		t.Fatalf("PostMessage(%s): %v", channel, err)
	}
	return ts
}

// text is MsgOptionText without escaping.
func text(s string) slack.MsgOption {
	return slack.MsgOptionText(s, false)
}

func TestMessagesThreadsAndResponseURL(t *testing.T) {
	srv := newServer(t)
	b := connect(t, srv)
	api := b.api

	root := post(t, api, "C1", slack.MsgOptionText("deploy <prod> & co", true))
	step := slack.NewTextBlockObject(slack.MarkdownType, "*step* 1", false, false)
	reply := post(t, api, "C1", slack.MsgOptionTS(root), text("reply"),
		slack.MsgOptionBlocks(slack.NewSectionBlock(step, nil, nil)))
	if _, _, _, err := api.UpdateMessage("C1", root, text("deployed")); err != nil {
		t.Fatal(err)
	}
	if _, err := api.PostEphemeral("C1", "U1", text("only you")); err != nil {
		t.Fatal(err)
	}

	env := send(t, srv, taskCmd)
	ephemeral := slack.MsgOptionResponseURL(env.ResponseURL, slack.ResponseTypeEphemeral)
	post(t, api, "C1", ephemeral, slack.MsgOptionText("usage: /task <stack>", true))
	inChannel := slack.MsgOptionResponseURL(env.ResponseURL, slack.ResponseTypeInChannel)
	post(t, api, "C1", inChannel, text("started"))

	msgs := srv.Messages("C1")
	want := []string{"deployed", "reply\n*step* 1", "started"}
	if diff := cmp.Diff(plains(msgs), want); diff != "" {
		t.Errorf("Messages(C1) mismatch (-got +want):\n%s", diff)
	}
	if msgs[0].Edits != 1 || msgs[0].TS != root || msgs[1].ThreadTS != root || msgs[1].TS != reply {
		t.Errorf("Messages(C1) = %+v, want the edited root and its reply", msgs)
	}
	if got := plains(srv.Thread("C1", root)); !cmp.Equal(got, []string{"reply\n*step* 1"}) {
		t.Errorf("Thread(C1, root) = %q", got)
	}
	want = []string{"only you", "usage: /task <stack>"}
	if diff := cmp.Diff(plains(srv.Ephemerals("U1")), want); diff != "" {
		t.Errorf("Ephemerals(U1) mismatch (-got +want):\n%s", diff)
	}
}

func TestResponseURLUsedUp(t *testing.T) {
	srv := newServer(t)
	b := connect(t, srv)
	env := send(t, srv, taskCmd)

	reply := func() error {
		respond := slack.MsgOptionResponseURL(env.ResponseURL, slack.ResponseTypeEphemeral)
		_, _, err := b.api.PostMessage("C1", respond, text("hi"))
		return err
	}
	for i := range 5 {
		if err := reply(); err != nil {
			t.Fatalf("reply %d: %v", i+1, err)
		}
	}
	if err := reply(); slackError(err) != "used_url" {
		t.Errorf("sixth reply = %v, want used_url", err)
	}
}

func TestWebAPIErrors(t *testing.T) {
	srv := newServer(t)
	api := newAPI(srv, fakeslack.BotToken)
	root := post(t, api, "C1", text("root"))
	reply := post(t, api, "C1", text("reply"), slack.MsgOptionTS(root))
	postErr := func(channel string, opts ...slack.MsgOption) error {
		_, _, err := api.PostMessage(channel, opts...)
		return err
	}
	updateErr := func(ts, s string) error {
		_, _, _, err := api.UpdateMessage("C1", ts, text(s))
		return err
	}

	tests := []struct {
		name string
		err  error
		want string
	}{
		{"thread of unknown message", postErr("C1", text("x"), slack.MsgOptionTS("1.000001")),
			"thread_not_found"},
		{"thread of a reply", postErr("C1", text("x"), slack.MsgOptionTS(reply)), "thread_not_found"},
		{"thread in another channel", postErr("C2", text("x"), slack.MsgOptionTS(root)),
			"thread_not_found"},
		{"no text", postErr("C1"), "no_text"},
		{"bad channel", postErr("nope", text("x")), "channel_not_found"},
		{"update unknown message", updateErr("1.000001", "x"), "message_not_found"},
		{"update too long", updateErr(root, strings.Repeat("x", 4001)), "msg_too_long"},
		{"react to unknown message",
			api.AddReaction("eyes", slack.NewRefToMessage("C1", "1.000001")), "message_not_found"},
		{"unknown group", lookupErr(api.GetUserGroupMembers("S404")), "no_such_subteam"},
		{"unknown user", lookupErr(api.GetUserInfo("U404")), "user_not_found"},
		{"bad token", lookupErr(newAPI(srv, "xoxb-wrong").AuthTest()), "invalid_auth"},
		{"no token", lookupErr(newAPI(srv, "").AuthTest()), "not_authed"},
	}
	for _, tt := range tests {
		if got := slackError(tt.err); got != tt.want {
			t.Errorf("%s: error = %v, want %q", tt.name, tt.err, tt.want)
		}
	}
}

// lookupErr drops the result of a call.
func lookupErr[T any](_ T, err error) error {
	return err
}

func TestRawWebAPIErrors(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		method string
		args   url.Values
		want   string
	}{
		{"chat.postMessage", url.Values{"channel": {"C1"}, "blocks": {`{"type":"section"}`}},
			"invalid_blocks"},
		{"chat.postMessage", url.Values{"channel": {"C1"}, "blocks": {`[`}}, "invalid_blocks"},
		{"no.such.method", url.Values{}, "unknown_method"},
	}
	for _, tt := range tests {
		tt.args.Set("token", fakeslack.BotToken)
		resp, err := http.PostForm(srv.APIURL()+tt.method, tt.args)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || body.Error != tt.want {
			t.Errorf("%s(%v) = %d %+v (%v), want 200 with error %q",
				tt.method, tt.args, resp.StatusCode, body, err, tt.want)
		}
	}
}

func TestLookups(t *testing.T) {
	srv := newServer(t)
	srv.AddUserGroup("S1", "U1", "U2")
	srv.AddUser("U1", "alice")
	api := newAPI(srv, fakeslack.BotToken)

	members, err := api.GetUserGroupMembers("S1")
	if err != nil || !cmp.Equal(members, []string{"U1", "U2"}) {
		t.Errorf("GetUserGroupMembers(S1) = %q, %v; want [U1 U2]", members, err)
	}
	user, err := api.GetUserInfo("U1")
	if err != nil || user.Name != "alice" {
		t.Errorf("GetUserInfo(U1) = %+v, %v; want alice", user, err)
	}
	ch, err := api.GetConversationInfo(&slack.GetConversationInfoInput{ChannelID: "C1ABC"})
	if err != nil || ch.Name != "c1abc" {
		t.Errorf("GetConversationInfo(C1ABC) = %+v, %v; want name c1abc", ch, err)
	}
	auth, err := api.AuthTest()
	if err != nil || auth.UserID != fakeslack.BotUserID || auth.BotID != fakeslack.BotID {
		t.Errorf("AuthTest() = %+v, %v; want the bot", auth, err)
	}
	if got := srv.Calls("usergroups.users.list"); got != 1 {
		t.Errorf("Calls(usergroups.users.list) = %d, want 1", got)
	}
}

// TestNotAMember checks that the bot can neither post to nor hear from a
// conversation it was not invited to, and that conversations.info says so.
func TestNotAMember(t *testing.T) {
	srv := newServer(t)
	b := connect(t, srv)
	ts := post(t, b.api, "C1", text("posted while a member"))
	for _, c := range []string{"C1", "G1", "D1"} {
		srv.RemoveBot(c)
	}

	for channel, want := range map[string]string{"C1": "not_in_channel", "G1": "channel_not_found", "D1": "channel_not_found"} {
		if _, _, err := b.api.PostMessage(channel, text("x")); slackError(err) != want {
			t.Errorf("PostMessage(%s) = %v, want %s", channel, err, want)
		}
		if _, err := b.api.PostEphemeral(channel, "U1", text("x")); slackError(err) != want {
			t.Errorf("PostEphemeral(%s) = %v, want %s", channel, err, want)
		}
	}
	if _, _, _, err := b.api.UpdateMessage("C1", ts, text("y")); slackError(err) != "not_in_channel" {
		t.Errorf("UpdateMessage(C1) = %v, want not_in_channel", err)
	}
	ch, err := b.api.GetConversationInfo(&slack.GetConversationInfoInput{ChannelID: "C1"})
	if err != nil || ch.IsMember {
		t.Errorf("GetConversationInfo(C1) = %+v, %v; want is_member false", ch, err)
	}

	env, err := srv.React(waitCtx(t), "U1", "C1", ts, "white_check_mark")
	if err != nil || env != nil {
		t.Errorf("React in C1 = %v, %v; want no event sent", env, err)
	}
	if _, _, err := b.api.PostMessage("C2", text("x")); err != nil {
		t.Errorf("PostMessage(C2) = %v, want the bot still a member there", err)
	}
}

func TestRateLimits(t *testing.T) {
	srv := newServer(t)
	api := newAPI(srv, fakeslack.BotToken)

	// The first eight posts fit the burst; within twenty, one must be limited.
	var limited *slack.RateLimitedError
	posted := 0
	for range 20 {
		_, _, err := api.PostMessage("C1", text("x"))
		if errors.As(err, &limited) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		posted++
	}
	if limited == nil || limited.RetryAfter != time.Second || posted < 8 {
		t.Fatalf("after %d posts: rate limit %+v, want 8 or more posts, then Retry-After 1s",
			posted, limited)
	}
	post(t, api, "C2", text("x")) // a bucket per channel

	unlimited := newAPI(newServer(t, fakeslack.WithoutRateLimits()), fakeslack.BotToken)
	for range 20 {
		post(t, unlimited, "C1", text("x"))
	}
}

func TestPlain(t *testing.T) {
	tests := []struct {
		name string
		msg  fakeslack.Message
		want string
	}{
		{"text only", fakeslack.Message{Text: "a &amp; b &lt;c&gt;"}, "a & b <c>"},
		{"blocks in order", fakeslack.Message{Text: "fallback", Blocks: json.RawMessage(`[
			{"type":"header","text":{"type":"plain_text","text":"Title"}},
			{"type":"section","fields":[
				{"type":"mrkdwn","text":"one"},{"type":"mrkdwn","text":"two"}]},
			{"type":"rich_text","elements":[{"type":"rich_text_section",
				"elements":[{"type":"text","text":"x &amp;lt; y"}]}]}
		]`)}, "fallback\nTitle\none\ntwo\nx &lt; y"},
		{"blocks only", fakeslack.Message{Blocks: json.RawMessage(
			`[{"type":"section","text":{"type":"mrkdwn","text":"hi"}}]`)}, "hi"},
	}
	for _, tt := range tests {
		if got := tt.msg.Plain(); got != tt.want {
			t.Errorf("%s: Plain() = %q, want %q", tt.name, got, tt.want)
		}
	}
}
