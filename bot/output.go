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
		channel: t.Channel,
		thread:  t.MessageTS,
		head:    c.OutputHead,
		tail:    tail{max: c.OutputTail},
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	go o.loop(context.WithoutCancel(ctx), max(c.FlushInterval, 10*time.Millisecond))
	return o, nil
}

// threadOutput streams one task's output into its thread. Writers append to
// pending; the loop goroutine alone talks to Slack, so messages keep the
// order of the output.
type threadOutput struct {
	c               *Client
	channel, thread string
	closing         chan struct{} // closed by Close
	closeOnce       sync.Once
	done            chan struct{} // closed by loop when everything was sent

	mu      sync.Mutex
	head    int    // bytes still to stream live; guarded by mu
	pending []byte // streamed at the next flush; guarded by mu
	tail    tail   // what came after the head; guarded by mu

	// Owned by the loop goroutine.
	cur   string // raw text of the newest output message
	curTS string // its ts, once posted
	err   error  // the first send that failed
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
// was sent, or ctx ends.
func (o *threadOutput) Close(ctx context.Context) error {
	o.closeOnce.Do(func() { close(o.closing) })
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
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
		case <-tick.C:
			o.flush(ctx, false)
		}
	}
}

// flush sends the pending output; the final flush adds the tail. Unless
// final, an incomplete UTF-8 sequence at the end waits for the rest of its
// bytes.
func (o *threadOutput) flush(ctx context.Context, final bool) {
	o.mu.Lock()
	if final {
		o.pending = append(o.pending, o.tail.text()...)
	}
	n := len(o.pending)
	if !final {
		n = completeUTF8(o.pending)
	}
	text := strings.ToValidUTF8(string(o.pending[:n]), "\uFFFD")
	o.pending = o.pending[n:]
	o.mu.Unlock()
	if text == "" {
		return
	}

	o.cur += text
	for {
		head, rest := splitOutput(o.cur, maxOutputMessage)
		o.cur = head
		o.send(ctx)
		if rest == "" {
			return
		}
		o.cur, o.curTS = rest, ""
	}
}

// send posts or updates the newest output message.
func (o *threadOutput) send(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The task masks its output before it gets here; masking again makes
	// this sink safe on its own.
	text := slack.MsgOptionText(fence(o.c.masker.String(o.cur)), false)

	var err error
	if o.curTS == "" {
		_, o.curTS, err = o.c.api.PostMessageContext(ctx, o.channel, slack.MsgOptionTS(o.thread), text)
	} else {
		_, _, _, err = o.c.api.UpdateMessageContext(ctx, o.channel, o.curTS, text)
	}
	if err != nil {
		o.c.log.WithError(err).WithField("channel", o.channel).Error("sending task output failed")
		o.err = errors.Join(o.err, err)
	}
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
