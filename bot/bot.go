// Package bot is taskbot's Slack adapter: it receives slash commands and
// reactions over Socket Mode, acknowledges them at once, and hands them to
// the task lifecycle; it shows tasks, their output and replies in Slack.
//
// Only this package decides what a Slack user sees: errors meant for users
// (*taskbot.Error, usage errors) are shown as they are; anything else is
// shown as a reference into the log.
package bot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/command"
	"github.com/taskbot/taskbot/task"
)

// Tasks is the task lifecycle, as the bot uses it.
type Tasks interface {
	Handle(ctx context.Context, req task.Request) (task.Reply, error)
	React(ctx context.Context, r task.Reaction) error
}

// Deduper remembers which deliveries were handled, across replicas.
type Deduper interface {
	FirstDelivery(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// Options configures a Bot.
type Options struct {
	// Workers bounds how many commands that may run a task (/task, and
	// reactions, which may approve one) are handled at once, and how many
	// other commands: tasks run in their workers, so the others get workers
	// of their own that long tasks cannot hold up. Zero means 32.
	Workers int

	// DrainTimeout is how long Run waits, once its context ends, for
	// running tasks to finish before cancelling them. Zero means 5 minutes.
	DrainTimeout time.Duration
}

// dedupeTTL outlasts Slack's redelivery schedule (the last retry comes
// about five minutes after the first delivery).
const dedupeTTL = time.Hour

// Bot receives Slack events over Socket Mode and hands them to the task
// lifecycle.
type Bot struct {
	client *Client
	tasks  Tasks
	dedupe Deduper
	log    logrus.FieldLogger
	opts   Options

	botUser    string         // the bot's own user ID, set by Run
	taskSlots  chan struct{}  // one token per busy worker that may run a task
	quickSlots chan struct{}  // one token per busy worker for other commands
	work       sync.WaitGroup // handlers in flight
}

// New returns a Bot; Run connects it.
func New(c *Client, tasks Tasks, dedupe Deduper, lg logrus.FieldLogger, o Options) *Bot {
	if o.Workers <= 0 {
		o.Workers = 32
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 5 * time.Minute
	}
	return &Bot{client: c, tasks: tasks, dedupe: dedupe, log: lg, opts: o,
		taskSlots: make(chan struct{}, o.Workers), quickSlots: make(chan struct{}, o.Workers)}
}

// Run connects to Slack and handles events until ctx ends. Then it takes no
// more work, gives running tasks DrainTimeout to finish, cancels the rest and
// waits for them to clean up. No task output is sent after Run returns.
func (b *Bot) Run(ctx context.Context) error {
	user, err := b.client.authTest(ctx)
	if err != nil {
		return err
	}
	b.botUser = user
	b.log.WithField("bot_user", user).Info("taskbot serving")

	sm := socketmode.New(b.client.api)
	connErr := make(chan error, 1)
	connDone := make(chan struct{})
	go func() {
		defer close(connDone)
		connErr <- sm.RunContext(ctx)
	}()
	// The socket ends with ctx, or has ended with its error.
	defer func() { <-connDone }()

	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	err = b.receive(ctx, work, sm, connErr)
	b.drain(cancelWork)
	// Tasks close their output before they end; one that could not (its
	// handler panicked) must not stream on after the bot.
	b.client.outputs.shutdown()
	return err
}

// receive acks each event as it arrives and hands it to a worker.
func (b *Bot) receive(ctx, work context.Context, sm *socketmode.Client, connErr <-chan error) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-connErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("socket mode: %w", err)
		case evt := <-sm.Events:
			b.event(work, sm, evt)
		}
	}
}

// event acks evt before anything slow, then dispatches it.
func (b *Bot) event(work context.Context, sm *socketmode.Client, evt socketmode.Event) {
	if evt.Request != nil {
		if err := sm.Ack(*evt.Request); err != nil {
			b.log.WithError(err).Warn("ack failed")
		}
	}

	switch evt.Type {
	case socketmode.EventTypeSlashCommand:
		if sc, ok := evt.Data.(slack.SlashCommand); ok {
			id := evt.Request.EnvelopeID
			slots := b.quickSlots
			if mayRunTask(sc) {
				slots = b.taskSlots
			}
			b.dispatch(work, slots, func(ctx context.Context) { b.slash(ctx, id, sc) })
		}
	case socketmode.EventTypeEventsAPI:
		b.eventsAPI(work, evt)
	case socketmode.EventTypeConnected, socketmode.EventTypeConnecting, socketmode.EventTypeConnectionError:
		b.log.WithField("state", string(evt.Type)).Info("socket mode connection")
	}
}

// eventsAPI dispatches the Events API events taskbot acts on.
func (b *Bot) eventsAPI(work context.Context, evt socketmode.Event) {
	outer, ok := evt.Data.(slackevents.EventsAPIEvent)
	if !ok {
		return
	}
	r, ok := outer.InnerEvent.Data.(*slackevents.ReactionAddedEvent)
	if !ok || r.User == b.botUser {
		return
	}
	key := "event:" + evt.Request.EnvelopeID
	if cb, ok := outer.Data.(*slackevents.EventsAPICallbackEvent); ok {
		key = "event:" + cb.EventID // Slack redelivers with the same event_id
	}
	// A skin tone is the same emoji: "+1::skin-tone-2" approves like "+1".
	emoji, _, _ := strings.Cut(r.Reaction, "::")
	reaction := task.Reaction{User: r.User, Channel: r.Item.Channel, TS: r.Item.Timestamp, Emoji: emoji}
	b.dispatch(work, b.taskSlots, func(ctx context.Context) { b.react(ctx, key, reaction) })
}

// react hands a reaction to the task lifecycle, once per event.
func (b *Bot) react(ctx context.Context, key string, r task.Reaction) {
	lg := b.log.WithField("user", r.User)
	first, err := b.dedupe.FirstDelivery(ctx, key, dedupeTTL)
	if err != nil {
		lg.WithError(err).Error("dedupe check failed; dropping the reaction")
		return
	}
	if !first {
		return
	}
	if err := b.tasks.React(ctx, r); err != nil {
		lg.WithError(err).Error("handling reaction failed")
	}
}

// mayRunTask reports whether sc may run a task, which holds its worker for
// as long as the task runs. It only sorts work; parsing comes later.
func mayRunTask(sc slack.SlashCommand) bool {
	first, _, _ := strings.Cut(strings.TrimSpace(sc.Text), " ")
	return trimSlash(sc.Command) == "task" && first != "" && first != "help"
}

// dispatch runs fn in a worker, once it has a token of slots. The event
// loop never waits here, so acks are never held up by work.
func (b *Bot) dispatch(ctx context.Context, slots chan struct{}, fn func(context.Context)) {
	b.work.Add(1)
	go func() {
		defer b.work.Done()
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-slots }()
		defer b.recoverPanic()
		fn(ctx)
	}()
}

func (b *Bot) recoverPanic() {
	if r := recover(); r != nil {
		b.log.WithField("panic", fmt.Sprint(r)).WithField("stack", string(debug.Stack())).Error("handler panicked")
	}
}

// drain waits for handlers, cancelling them after the drain timeout.
func (b *Bot) drain(cancel context.CancelFunc) {
	done := make(chan struct{})
	go func() { b.work.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(b.opts.DrainTimeout):
		b.log.Warn("drain timeout passed; cancelling running tasks")
		cancel()
	}
	<-done
}

// slash handles one slash command and answers the requester. Slack does
// not redeliver slash commands, but a replica that restarts mid-delivery
// might see one twice: the envelope ID dedupes it.
func (b *Bot) slash(ctx context.Context, envelopeID string, sc slack.SlashCommand) {
	lg := b.log.WithFields(logrus.Fields{"user": sc.UserID, "channel": sc.ChannelID, "command": sc.Command})
	first, err := b.dedupe.FirstDelivery(ctx, "slash:"+envelopeID, dedupeTTL)
	if err == nil && !first {
		return
	}

	var reply task.Reply
	if err == nil {
		reply, err = b.handle(ctx, sc)
	}
	text, public := reply.Text, reply.Public
	if err != nil {
		text, public = b.errorText(lg, err), false
	}
	if text == "" {
		return
	}
	if err := b.client.Respond(ctx, sc.ResponseURL, text, public); err != nil {
		lg.WithError(err).Error("answering slash command failed")
	}
}

func (b *Bot) handle(ctx context.Context, sc slack.SlashCommand) (task.Reply, error) {
	text, err := DecodeText(sc.Text)
	if err != nil {
		return task.Reply{}, undecodable(sc.Command, err)
	}
	// Usage errors quote the text, so they must quote it masked; /task's
	// command goes on as typed, for the task lifecycle to refuse a secret.
	cmd, err := command.ParseMasked(sc.Command, text, b.client.masker.String)
	if err != nil {
		return task.Reply{}, err
	}
	return b.tasks.Handle(ctx, task.Request{User: sc.UserID, Channel: sc.ChannelID, Command: cmd})
}

// undecodable returns what the user of command name sees when its text
// could not be decoded: what to fix, then the usage.
func undecodable(name string, err error) error {
	var derr *DecodeError
	if !errors.As(err, &derr) {
		return fmt.Errorf("decode slash command text: %w", err)
	}
	return taskbot.Errorf(taskbot.EInvalid,
		"I could not read that command: it has %s. Type it again with that part as plain text.\n%s",
		EscapeText(derr.Problem), command.Usage(trimSlash(name)))
}

// errorText is what the requester sees for err: the sentence meant for
// them, or a reference to the full error in the log.
func (b *Bot) errorText(lg logrus.FieldLogger, err error) string {
	if msg, ok := taskbot.UserMessage(err); ok {
		return msg
	}
	ref := newRef()
	lg.WithError(err).WithField("ref", ref).Error("request failed")
	return fmt.Sprintf("Something went wrong (ref %s). An operator can find the details in taskbot's log.", ref)
}

func newRef() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func trimSlash(name string) string {
	if len(name) > 0 && name[0] == '/' {
		return name[1:]
	}
	return name
}
