package bot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sirupsen/logrus"
	"github.com/slack-go/slack"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/task"
)

// maxOutputMessage is the most escaped text one output message holds, below
// chat.update's 4,000 characters with room for the code fences.
const maxOutputMessage = 3800

// The parts of a task's output a thread shows. A thread is for people: past
// OutputHead bytes, only the last OutputTail bytes are kept and shown at the
// end, where errors usually are, with a note of how much was left out. This
// also bounds the memory one chatty task can take.
const (
	DefaultOutputHead = 24 << 10
	DefaultOutputTail = 12 << 10
)

// OpenOutput implements task.Chat: output goes into the task's thread, in
// messages that grow by chat.update until full, sent at most once per
// FlushInterval so that a chatty task stays within Slack's rate limits.
func (c *Client) OpenOutput(ctx context.Context, t taskbot.Task) (task.Output, error) {
	if t.MessageTS == "" {
		return nil, fmt.Errorf("task %s has no message to thread its output under", t.ID)
	}
	o := &threadOutput{
		c:       c,
		log:     c.log.WithFields(logrus.Fields{"task_id": t.ID, "stack": t.Stack, "channel": t.Channel}),
		channel: t.Channel,
		thread:  t.MessageTS,
		head:    c.OutputHead,
		tail:    tail{max: c.OutputTail},
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	every := max(c.FlushInterval, 10*time.Millisecond)
	// The loop does not end with ctx, so that a cancelled task's last
	// output is still sent: Close ends it, or the bot's shutdown.
	stop, err := c.outputs.start(func(ctx context.Context) { o.loop(ctx, every) })
	if err != nil {
		return nil, fmt.Errorf("open output of task %s: %w", t.ID, err)
	}
	o.stop = stop
	return o, nil
}

// errShutDown refuses output opened once the bot has shut down.
var errShutDown = errors.New("the slack client has shut down")

// outputLoops runs the loops of open outputs, so that none outlives the
// bot: its shutdown ends those that were never closed and waits for all.
type outputLoops struct {
	life context.Context    // ends at shutdown
	end  context.CancelFunc // ends life
	wg   sync.WaitGroup     // loops running

	// mu is held while start checks life and adds to wg, and while
	// shutdown ends life: no loop starts once shutdown waits for wg.
	mu sync.Mutex
}

func newOutputLoops() *outputLoops {
	life, end := context.WithCancel(context.Background())
	return &outputLoops{life: life, end: end}
}

// start runs loop in a goroutine until it returns; its context ends with
// stop or at shutdown.
func (l *outputLoops) start(loop func(context.Context)) (stop context.CancelFunc, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.life.Err() != nil {
		return nil, errShutDown
	}
	ctx, stop := context.WithCancel(l.life)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer stop()
		loop(ctx)
	}()
	return stop, nil
}

// shutdown ends every loop still running, and waits for them.
func (l *outputLoops) shutdown() {
	l.mu.Lock()
	l.end()
	l.mu.Unlock()
	l.wg.Wait()
}

// threadOutput streams one task's output into its thread. Writers append to
// pending; the loop goroutine alone talks to Slack, so messages keep the
// order of the output.
type threadOutput struct {
	c               *Client
	log             logrus.FieldLogger // with the task's fields
	channel, thread string
	closing         chan struct{} // closed by Close
	closeOnce       sync.Once
	stop            context.CancelFunc // ends the loop's context
	done            chan struct{}      // closed by loop when it returns

	mu      sync.Mutex
	head    int    // bytes still to stream live; guarded by mu
	pending []byte // streamed at the next flush; guarded by mu
	tail    tail   // what came after the head; guarded by mu

	// Owned by the loop goroutine.
	cur     string // raw text of the newest output message, and what did not fit it yet
	curTS   string // its ts, once posted
	dirty   bool   // cur holds text Slack does not show yet
	refused bool   // Slack refused a send: nothing more is sent
	err     error  // why the last send failed, if it did
}

// Write implements io.Writer. It never blocks on Slack.
func (o *threadOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := min(len(p), o.head)
	if n < len(p) {
		// The head ends here: at a character's start, not inside it.
		n = completeUTF8(p[:n])
		o.head = n
	}
	o.pending = append(o.pending, p[:n]...)
	o.head -= n
	o.tail.write(p[n:])
	return len(p), nil
}

// Close implements task.Output: it sends what is pending and waits until it
// was sent, or ctx ends. Either way the loop has ended when Close returns.
func (o *threadOutput) Close(ctx context.Context) error {
	o.closeOnce.Do(func() { close(o.closing) })
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		// Nobody waits for the last output any more: stop trying to send
		// it, and stop taking the pace's tokens from other tasks.
		o.stop()
		<-o.done
		return fmt.Errorf("sending the last output: %w", ctx.Err())
	}
}

func (o *threadOutput) loop(ctx context.Context, every time.Duration) {
	defer close(o.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-o.closing:
			o.flush(ctx, true)
			return
		case <-ctx.Done(): // the bot shut down before Close, or Close gave up at once
			o.log.Warn("task output stopped before its final flush")
			return
		case <-tick.C:
			o.flush(ctx, false)
		}
	}
}

// flush sends the pending output; the final flush adds the tail. Output
// that could not be sent stays in cur and goes with the next flush, so a
// slow or briefly unreachable Slack delays output but loses none; the final
// flush keeps trying until ctx ends, when Close gives up waiting for it.
func (o *threadOutput) flush(ctx context.Context, final bool) {
	if text := o.take(final); text != "" && !o.refused {
		o.cur += text
		o.dirty = true
	}
	for o.dirty {
		head, rest := splitOutput(o.cur, maxOutputMessage)
		if err := o.send(ctx, head); err != nil {
			o.err = err
			if !o.retry(ctx, err, final) {
				return
			}
			continue
		}
		o.err = nil
		if rest == "" {
			o.dirty = false
			return
		}
		o.cur, o.curTS = rest, "" // the message is full: go on in a new one
	}
}

// retry handles a failed send and reports whether to send again at once:
// only in the final flush, after a pause. An error Slack answered with (the
// thread was deleted, say) will not go away, so it ends the streaming; once
// ctx ended, whoever ended it says why.
func (o *threadOutput) retry(ctx context.Context, err error, final bool) bool {
	lg := o.log.WithError(err)
	switch {
	case refusedBySlack(err):
		lg.Error("sending task output failed; giving up")
		o.refused, o.dirty = true, false
		return false
	case ctx.Err() != nil:
		return false
	}
	lg.Warn("sending task output failed; trying again")
	return final && sleep(ctx, time.Second)
}

// slackFault is what an error Slack answered says about sending again.
type slackFault int

const (
	faultLasting   slackFault = iota // sending the same again fails the same way
	faultUnsent                      // Slack's own, passing, and it did nothing
	faultMaybeDone                   // Slack's own and passing, but part may be done
)

// passingSlackErrors are the errors Slack answers with when the fault is
// its own and passing: sending again later may well work. Any other error
// Slack answers is lasting.
var passingSlackErrors = map[string]slackFault{
	"internal_error":      faultMaybeDone,
	"fatal_error":         faultMaybeDone,
	"service_unavailable": faultUnsent,
	"request_timeout":     faultUnsent,
	"rate_limited":        faultUnsent,
	"ratelimited":         faultUnsent,
}

// faultOf classifies err, and reports whether Slack answered it at all: a
// call that got no answer (it timed out, say) may have been carried out.
// HTTP 429s are waited out by the client before they get here.
func faultOf(err error) (slackFault, bool) {
	var resp slack.SlackErrorResponse
	if !errors.As(err, &resp) {
		return 0, false
	}
	return passingSlackErrors[resp.Err], true // faultLasting when not listed
}

// refusedBySlack reports whether Slack answered err with a lasting error.
func refusedBySlack(err error) bool {
	f, answered := faultOf(err)
	return answered && f == faultLasting
}

// passingSlackFault reports whether Slack answered err for a fault of its
// own that may well be gone when asked again.
func passingSlackFault(err error) bool {
	f, answered := faultOf(err)
	return answered && f != faultLasting
}

// unsentSlackFault reports whether err is a passing fault after which Slack
// did nothing, so that even a post can be made again without being made
// twice.
func unsentSlackFault(err error) bool {
	f, answered := faultOf(err)
	return answered && f == faultUnsent
}

// sleep waits for d and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// take returns the pending output, and the tail if final. Unless final, an
// incomplete UTF-8 sequence at the end waits for the rest of its bytes.
func (o *threadOutput) take(final bool) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if final {
		o.pending = append(o.pending, o.tail.text()...)
	}
	n := len(o.pending)
	if !final {
		n = completeUTF8(o.pending)
	}
	text := strings.ToValidUTF8(string(o.pending[:n]), "\uFFFD")
	o.pending = o.pending[n:]
	return text
}

// send posts text as the newest output message, or updates that message to
// text, at the pace the workspace allows.
func (o *threadOutput) send(ctx context.Context, text string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := o.c.pace.Wait(ctx); err != nil {
		return fmt.Errorf("wait for slack's rate limit: %w", err)
	}
	// The task masks its output before it gets here; masking again makes
	// this sink safe on its own.
	msg := slack.MsgOptionText(fence(o.c.masker.String(text)), false)

	if o.curTS == "" {
		_, ts, err := o.c.api.PostMessageContext(ctx, o.channel, slack.MsgOptionTS(o.thread), msg)
		if err != nil {
			return fmt.Errorf("post output in %s: %w", o.channel, err)
		}
		o.curTS = ts
		return nil
	}
	if _, _, _, err := o.c.api.UpdateMessageContext(ctx, o.channel, o.curTS, msg); err != nil {
		return fmt.Errorf("update output %s: %w", o.curTS, err)
	}
	return nil
}

// completeUTF8 returns the length of the longest prefix of p that does not
// end inside a UTF-8 sequence.
func completeUTF8(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i]) {
			if utf8.FullRune(p[i:]) {
				return len(p)
			}
			return i
		}
	}
	return len(p)
}

// splitOutput cuts s where its escaped form would pass limit, preferring the
// last line break before that point.
func splitOutput(s string, limit int) (head, rest string) {
	size, cut, lastNL := 0, len(s), -1
	for i, r := range s {
		size += escapedLen(r)
		if size > limit {
			cut = i
			break
		}
		if r == '\n' {
			lastNL = i + 1
		}
	}
	if cut == len(s) {
		return s, ""
	}
	if lastNL > 0 {
		cut = lastNL
	}
	return s[:cut], s[cut:]
}

func escapedLen(r rune) int {
	switch r {
	case '&':
		return len("&amp;")
	case '<', '>':
		return len("&lt;")
	case '`':
		return 2 // room for the zero-width space that breaks a ```
	}
	return utf8.RuneLen(r)
}

// tail keeps the last max bytes written to it and counts the rest.
type tail struct {
	max     int
	buf     []byte
	dropped int
	atLine  bool // buf starts a line: the last byte dropped was '\n'
}

func (t *tail) write(p []byte) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.dropped += over
		t.atLine = t.buf[over-1] == '\n'
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
}

// text returns the tail, behind a note of what was left out, starting at a
// whole line where one starts close by.
func (t *tail) text() []byte {
	if t.dropped == 0 {
		return t.buf
	}
	b := t.buf
	if i := bytes.IndexByte(b, '\n'); !t.atLine && i >= 0 && i < 200 {
		t.dropped += i + 1
		b = b[i+1:]
	}
	for len(b) > 0 && !utf8.RuneStart(b[0]) {
		t.dropped++
		b = b[1:]
	}
	note := fmt.Sprintf("\n[… %d bytes of output not shown; the last %d follow …]\n", t.dropped, len(b))
	return append([]byte(note), b...)
}
