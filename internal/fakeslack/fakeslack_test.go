package fakeslack_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/taskbot/taskbot/internal/fakeslack"
)

// waitLimit bounds every wait, so that a broken fake fails instead of hanging.
const waitLimit = 10 * time.Second

// taskCmd is a plain "/task" from U1 in C1.
var taskCmd = fakeslack.SlashCommand{User: "U1", Channel: "C1", Command: "/task"}

// newServer starts a fake Slack with short pings and retries.
func newServer(t *testing.T, opts ...fakeslack.Option) *fakeslack.Server {
	t.Helper()
	fast := []fakeslack.Option{
		fakeslack.WithPingInterval(100 * time.Millisecond),
		fakeslack.WithRetryDelay(200 * time.Millisecond),
	}
	return fakeslack.New(t, append(fast, opts...)...)
}

// newAPI returns a slack-go Web API client of the fake using botToken.
func newAPI(srv *fakeslack.Server, botToken string) *slack.Client {
	return slack.New(botToken, slack.OptionAPIURL(srv.APIURL()),
		slack.OptionAppLevelToken(fakeslack.AppToken))
}

// bot is a slack-go Socket Mode client running against the fake.
type bot struct {
	api   *slack.Client
	sm    *socketmode.Client
	hello *socketmode.Request
}

// connect runs a Socket Mode client until the test ends and waits until it
// has its hello.
func connect(t *testing.T, srv *fakeslack.Server) *bot {
	t.Helper()

	b := &bot{api: newAPI(srv, fakeslack.BotToken)}
	b.sm = socketmode.New(b.api)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.sm.RunContext(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	b.hello = b.next(t, socketmode.EventTypeHello).Request
	return b
}

// next returns the next event of type typ, skipping others, and fails when
// slack-go could not parse a frame the fake sent. (Incoming errors are not
// failures: slack-go reports one whenever it closes a socket itself.)
func (b *bot) next(t *testing.T, typ socketmode.EventType) socketmode.Event {
	t.Helper()

	ctx := waitCtx(t)
	for {
		select {
		case evt := <-b.sm.Events:
			switch evt.Type {
			case typ:
				return evt
			case socketmode.EventTypeErrorBadMessage:
				t.Fatalf("slack-go could not read a frame: %+v", evt.Data)
			}
		case <-ctx.Done():
			t.Fatalf("no %s event: %v", typ, ctx.Err())
		}
	}
}

// ack acknowledges evt, failing the test if slack-go refuses.
func (b *bot) ack(t *testing.T, evt socketmode.Event, payload ...any) {
	t.Helper()
	if err := b.sm.Ack(*evt.Request, payload...); err != nil {
		t.Fatalf("ack %s: %v", evt.Request.EnvelopeID, err)
	}
}

// waitCtx is the context for calls that wait on the fake.
func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// send sends a slash command, failing the test on error.
func send(t *testing.T, srv *fakeslack.Server, c fakeslack.SlashCommand) *fakeslack.Envelope {
	t.Helper()
	env, err := srv.SendSlashCommand(waitCtx(t), c)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// innerEvent returns the inner event of an events_api event.
func innerEvent(evt socketmode.Event) any {
	return evt.Data.(slackevents.EventsAPIEvent).InnerEvent.Data
}

// eventID returns the event_id of an events_api event.
func eventID(evt socketmode.Event) string {
	outer := evt.Data.(slackevents.EventsAPIEvent).Data
	return outer.(*slackevents.EventsAPICallbackEvent).EventID
}

func TestHelloAndNumConnections(t *testing.T) {
	srv := newServer(t)
	connect(t, srv)
	if err := srv.WaitConnected(waitCtx(t)); err != nil {
		t.Fatal(err)
	}

	hello := connect(t, srv).hello
	if got := hello.NumConnections; got != 2 {
		t.Errorf("hello num_connections = %d, want 2", got)
	}
	if got := hello.ConnectionInfo.AppID; got != fakeslack.AppID {
		t.Errorf("hello app_id = %q, want %q", got, fakeslack.AppID)
	}
}

func TestSlashCommandAndAck(t *testing.T) {
	srv := newServer(t)
	srv.AddUser("U1", "alice")
	b := connect(t, srv)

	c := taskCmd
	c.Text = "prod plan &lt;x&gt;"
	env := send(t, srv, c)
	evt := b.next(t, socketmode.EventTypeSlashCommand)

	got := evt.Data.(slack.SlashCommand)
	want := slack.SlashCommand{
		Token: got.Token, TeamID: fakeslack.TeamID, TeamDomain: "fake",
		ChannelID: "C1", ChannelName: "c1", UserID: "U1", UserName: "alice",
		Command: "/task", Text: c.Text, ResponseURL: env.ResponseURL,
		TriggerID: got.TriggerID, APIAppID: fakeslack.AppID,
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("slash command mismatch (-got +want):\n%s", diff)
	}
	if got.TriggerID == "" || !evt.Request.AcceptsResponsePayload {
		t.Errorf("trigger_id %q, accepts_response_payload %v: want both set",
			got.TriggerID, evt.Request.AcceptsResponsePayload)
	}

	b.ack(t, evt, map[string]string{"text": "working on it"})
	ack, err := env.WaitAck(waitCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if ack.EnvelopeID != env.ID || ack.Latency < 0 || string(ack.Payload) != `{"text":"working on it"}` {
		t.Errorf("ack = %+v, want envelope %s with the text payload", ack, env.ID)
	}
	if got := plains(srv.Ephemerals("U1")); !cmp.Equal(got, []string{"working on it"}) {
		t.Errorf("ephemerals after ack with text = %q", got)
	}
}

func TestEventWaitsForConnection(t *testing.T) {
	srv := newServer(t)
	sent := make(chan error, 1)
	go func() {
		_, err := srv.React(waitCtx(t), "U1", "C1", "1.000001", "eyes")
		sent <- err
	}()

	b := connect(t, srv)
	added := innerEvent(b.next(t, socketmode.EventTypeEventsAPI))
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if _, ok := added.(*slackevents.ReactionAddedEvent); !ok {
		t.Errorf("event sent before connecting = %T, want *slackevents.ReactionAddedEvent", added)
	}
}

func TestReactions(t *testing.T) {
	srv := newServer(t)
	b := connect(t, srv)
	_, ts, err := b.api.PostMessage("C1", slack.MsgOptionText("task 42", false))
	if err != nil {
		t.Fatal(err)
	}

	env, err := srv.React(waitCtx(t), "U1", "C1", ts, "white_check_mark")
	if err != nil {
		t.Fatal(err)
	}
	evt := b.next(t, socketmode.EventTypeEventsAPI)
	added := innerEvent(evt).(*slackevents.ReactionAddedEvent)
	want := slackevents.ReactionAddedEvent{
		Type: "reaction_added", User: "U1", Reaction: "white_check_mark",
		ItemUser:       fakeslack.BotUserID,
		Item:           slackevents.Item{Type: "message", Channel: "C1", Timestamp: ts},
		EventTimestamp: added.EventTimestamp,
	}
	if diff := cmp.Diff(*added, want); diff != "" {
		t.Errorf("reaction_added mismatch (-got +want):\n%s", diff)
	}
	b.ack(t, evt)
	if _, err := env.WaitAck(waitCtx(t)); err != nil {
		t.Fatal(err)
	}

	// The bot's own reaction comes back as an event, as in Slack.
	ref := slack.NewRefToMessage("C1", ts)
	if err := b.api.AddReaction("eyes", ref); err != nil {
		t.Fatal(err)
	}
	evt = b.next(t, socketmode.EventTypeEventsAPI)
	own := innerEvent(evt).(*slackevents.ReactionAddedEvent)
	if own.User != fakeslack.BotUserID || own.Reaction != "eyes" {
		t.Errorf("event of own reaction = %+v, want eyes by the bot", own)
	}
	b.ack(t, evt)
	if err := b.api.AddReaction("eyes", ref); slackError(err) != "already_reacted" {
		t.Errorf("second AddReaction(eyes) = %v, want already_reacted", err)
	}
	if got := srv.Reactions("C1", ts); !cmp.Equal(got, []string{"eyes"}) {
		t.Errorf("Reactions = %q, want [eyes]", got)
	}

	if _, err := srv.Unreact(waitCtx(t), "U1", "C1", ts, "white_check_mark"); err != nil {
		t.Fatal(err)
	}
	removed := innerEvent(b.next(t, socketmode.EventTypeEventsAPI))
	if _, ok := removed.(*slackevents.ReactionRemovedEvent); !ok {
		t.Errorf("Unreact delivered %T, want *slackevents.ReactionRemovedEvent", removed)
	}
}

func TestUnackedEventIsRedelivered(t *testing.T) {
	srv := newServer(t)
	b := connect(t, srv)

	env, err := srv.React(waitCtx(t), "U1", "C1", "1.000001", "eyes")
	if err != nil {
		t.Fatal(err)
	}
	first := b.next(t, socketmode.EventTypeEventsAPI) // not acked
	retry := b.next(t, socketmode.EventTypeEventsAPI)

	if eventID(retry) != env.EventID || eventID(first) != env.EventID {
		t.Errorf("event IDs %q then %q, want %q both times",
			eventID(first), eventID(retry), env.EventID)
	}
	r := retry.Request
	if r.RetryAttempt != 1 || r.RetryReason != "timeout" || r.EnvelopeID == first.Request.EnvelopeID {
		t.Errorf("retry = attempt %d reason %q envelope %s, want 1, timeout and a new envelope",
			r.RetryAttempt, r.RetryReason, r.EnvelopeID)
	}

	b.ack(t, retry)
	ack, err := env.WaitAck(waitCtx(t))
	if err != nil || ack.RetryAttempt != 1 || ack.EnvelopeID != r.EnvelopeID {
		t.Errorf("WaitAck() = %+v, %v; want the ack of retry 1", ack, err)
	}
}

func TestRoundRobinAndReconnect(t *testing.T) {
	srv := newServer(t)
	bots := []*bot{connect(t, srv), connect(t, srv)}

	for range 4 {
		send(t, srv, taskCmd)
	}
	// With round robin each bot gets two; otherwise one of them waits in vain.
	for i, b := range bots {
		for range 2 {
			b.ack(t, b.next(t, socketmode.EventTypeSlashCommand))
		}
		if n := len(b.sm.Events); n != 0 {
			t.Errorf("bot %d has %d more events queued, want each command delivered once", i, n)
		}
	}

	srv.Disconnect("refresh_requested")
	for _, b := range bots {
		b.next(t, socketmode.EventTypeHello)
	}
	send(t, srv, taskCmd)
	if got := srv.Calls("apps.connections.open"); got != 4 {
		t.Errorf("Calls(apps.connections.open) = %d, want 4 (two connects, two reconnects)", got)
	}
}

func TestBadAppToken(t *testing.T) {
	srv := newServer(t)
	api := slack.New(fakeslack.BotToken, slack.OptionAPIURL(srv.APIURL()),
		slack.OptionAppLevelToken("xapp-wrong"))

	err := socketmode.New(api).RunContext(waitCtx(t))
	if slackError(err) != "invalid_auth" {
		t.Errorf("RunContext with a wrong app token = %v, want invalid_auth", err)
	}
}

func TestRawSocketProtocol(t *testing.T) {
	srv := newServer(t)
	_, link, err := newAPI(srv, fakeslack.BotToken).StartSocketModeContext(waitCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial(link+"&debug_reconnects=true",
		http.Header{"Origin": {"https://api.slack.com"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	pinged := make(chan struct{}, 1)
	ws.SetPingHandler(func(string) error {
		select {
		case pinged <- struct{}{}:
		default:
		}
		return nil
	})
	frames := readFrames(ws)

	if f := <-frames; f["type"] != "hello" {
		t.Fatalf("first frame = %v, want hello", f)
	}
	select {
	case <-pinged:
	case <-waitCtx(t).Done():
		t.Fatal("no ping frame")
	}

	env := send(t, srv, taskCmd)
	f := <-frames
	_, hasRetry := f["retry_attempt"]
	if f["envelope_id"] != env.ID || f["accepts_response_payload"] != true || hasRetry {
		t.Errorf("slash command frame = %v, want envelope %s accepting a response, no retry fields",
			f, env.ID)
	}
	if err := ws.WriteJSON(map[string]string{"envelope_id": env.ID}); err != nil {
		t.Fatal(err)
	}
	if ack, err := env.WaitAck(waitCtx(t)); err != nil || ack.Payload != nil {
		t.Errorf("WaitAck() = %+v, %v; want an ack without payload", ack, err)
	}
}

// readFrames decodes frames from ws until it closes.
func readFrames(ws *websocket.Conn) <-chan map[string]any {
	frames := make(chan map[string]any, 16)
	go func() {
		defer close(frames)
		for {
			var f map[string]any
			if ws.ReadJSON(&f) != nil {
				return
			}
			frames <- f
		}
	}()
	return frames
}

// slackError returns the Slack error code of err, or "" if it has none.
func slackError(err error) string {
	var e slack.SlackErrorResponse
	if errors.As(err, &e) {
		return e.Err
	}
	return ""
}
