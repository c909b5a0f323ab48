package bot

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/internal/fakeslack"
	"github.com/taskbot/taskbot/internal/logtest"
	"github.com/taskbot/taskbot/mask"
	"github.com/taskbot/taskbot/task"
)

// slackMessageLimit is the most characters of text chat.update takes.
const slackMessageLimit = 4000

// postTask posts a running task's message and returns the task with its ts.
func postTask(tb testing.TB, c *Client) taskbot.Task {
	tb.Helper()
	t := baseTask()
	ts, err := c.PostTask(tb.Context(), task.View{Task: t})
	if err != nil {
		tb.Fatal(err)
	}
	t.MessageTS = ts
	return t
}

// openOutput starts a fake Slack, posts a task and opens its output.
func openOutput(tb testing.TB, opts ...fakeslack.Option) (*fakeslack.Server, taskbot.Task, task.Output) {
	tb.Helper()
	return openOutputWith(tb, func(*Client) {}, opts...)
}

// openOutputWith is openOutput with a client that configure changed.
func openOutputWith(tb testing.TB, configure func(*Client), opts ...fakeslack.Option) (
	*fakeslack.Server, taskbot.Task, task.Output,
) {
	tb.Helper()
	srv := fakeslack.New(tb, opts...)
	lg, _ := newLogger()
	c := newClient(tb, srv, mask.New(), lg)
	configure(c)
	t := postTask(tb, c)
	out, err := c.OpenOutput(tb.Context(), t)
	if err != nil {
		tb.Fatal(err)
	}
	return srv, t, out
}

// write writes s to out, failing the test on an error.
func write(tb testing.TB, out task.Output, s string) {
	tb.Helper()
	if n, err := out.Write([]byte(s)); n != len(s) || err != nil {
		tb.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}

// closeOutput closes out, failing the test on an error.
func closeOutput(tb testing.TB, out task.Output) {
	tb.Helper()
	if err := out.Close(tb.Context()); err != nil {
		tb.Fatalf("Close: %v", err)
	}
}

// threadOutputText returns the output shown in a task's thread: each
// reply's text without its code fences, zero-width spaces and escaping,
// concatenated. It fails the test for a reply that is not one code block
// within Slack's limit.
func threadOutputText(tb testing.TB, srv *fakeslack.Server, t taskbot.Task) string {
	tb.Helper()
	var b strings.Builder
	for _, m := range srv.Thread(t.Channel, t.MessageTS) {
		if n := utf8.RuneCountInString(m.Text); n > slackMessageLimit {
			tb.Errorf("output message %s has %d characters, more than Slack's %d", m.TS, n, slackMessageLimit)
		}
		inner, ok := strings.CutPrefix(m.Text, "```")
		inner, ok2 := strings.CutSuffix(inner, "```")
		if !ok || !ok2 || len(m.Text) < 6 {
			tb.Fatalf("output message %s is not a code block: %q", m.TS, m.Text)
		}
		b.WriteString(unfence(inner))
	}
	return b.String()
}

// TestOutputGrowsInOrder checks that output appears in the task's thread
// as it is written, in one message that chat.update grows.
func TestOutputGrowsInOrder(t *testing.T) {
	srv, tk, out := openOutput(t, fakeslack.WithoutRateLimits())

	write(t, out, "first line\n")
	waitFor(t, srv, "the first line", func() bool {
		return strings.Contains(threadOutputText(t, srv, tk), "first line")
	})
	write(t, out, "second line\n")
	write(t, out, "third line\n")
	closeOutput(t, out)

	if diff := cmp.Diff(threadOutputText(t, srv, tk), "first line\nsecond line\nthird line\n"); diff != "" {
		t.Errorf("thread mismatch (-got +want):\n%s", diff)
	}
	thread := srv.Thread(tk.Channel, tk.MessageTS)
	if len(thread) != 1 || thread[0].Edits == 0 {
		t.Errorf("thread has %d messages (edits: %+v), want one message that was updated", len(thread), thread)
	}
}

// TestOutputEscaped checks that output shows &, < and > as written rather
// than as Slack markup.
func TestOutputEscaped(t *testing.T) {
	srv, tk, out := openOutput(t, fakeslack.WithoutRateLimits())

	write(t, out, "a && b <@U0BOB> <!channel> > out")
	closeOutput(t, out)

	thread := srv.Thread(tk.Channel, tk.MessageTS)
	want := "```a &amp;&amp; b &lt;@U0BOB&gt; &lt;!channel&gt; &gt; out```"
	if len(thread) != 1 || thread[0].Text != want {
		t.Errorf("thread = %+v, want one message %q", thread, want)
	}
}

// TestOutputLargeNothingLost writes 20,000 lines in writes that cut lines
// and characters anywhere, and checks that the thread holds exactly them,
// in messages within Slack's limit.
func TestOutputLargeNothingLost(t *testing.T) {
	srv, tk, out := openOutputWith(t, showAll, fakeslack.WithoutRateLimits())

	var all strings.Builder
	samples := []string{"plain", "a & b", "<tag>", "```fenced```", "日本語 ünï €", "> >> &&&"}
	for i := range 20000 {
		fmt.Fprintf(&all, "%05d %s\n", i, samples[i%len(samples)])
	}
	written := all.String()
	for rest := written; rest != ""; {
		n := min(len(rest), 997) // odd sizes split multi-byte characters
		write(t, out, rest[:n])
		rest = rest[n:]
	}
	closeOutput(t, out)

	got := threadOutputText(t, srv, tk)
	if got != written {
		t.Errorf("thread holds %d bytes, want the %d written; first difference at byte %d",
			len(got), len(written), firstDifference(got, written))
	}
	if n := len(srv.Thread(tk.Channel, tk.MessageTS)); n < 2 {
		t.Errorf("%d bytes of output went into %d message, want several", len(written), n)
	}
}

// showAll makes a client stream all output, however long.
// It does not pace its updates either: the stand-in's limits are off.
func showAll(c *Client) {
	c.OutputHead = 1 << 30
	c.pace = rate.NewLimiter(rate.Inf, 1)
}

func firstDifference(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestOutputRateLimited checks that output that needs more messages than
// Slack allows at once still arrives completely: slack-go waits out the
// 429s, and Close waits for it.
func TestOutputRateLimited(t *testing.T) {
	srv, tk, out := openOutputWith(t, showAll) // rate limits on, as in Slack

	// Eight full messages, which with the task's message is one post more
	// than the channel's burst.
	line := strings.Repeat("x", 69) + "\n"
	written := strings.Repeat(line, 8*(maxOutputMessage/len(line)))
	write(t, out, written)
	closeOutput(t, out)

	if got := threadOutputText(t, srv, tk); got != written {
		t.Errorf("thread holds %d bytes, want the %d written", len(got), len(written))
	}
	posted := len(srv.Thread(tk.Channel, tk.MessageTS)) + 1
	if calls := srv.Calls("chat.postMessage"); calls <= posted {
		t.Errorf("%d messages posted in %d calls: the rate limit was not exercised", posted, calls)
	}
}

// TestOutputSlackUnreachable checks that output sent while Slack does not
// answer is sent again: Close keeps trying until it gets through.
func TestOutputSlackUnreachable(t *testing.T) {
	srv := fakeslack.New(t, fakeslack.WithoutRateLimits())
	c, failing, logs := unreliableClient(t, srv)
	tk := postTask(t, c)
	out, err := c.OpenOutput(t.Context(), tk)
	if err != nil {
		t.Fatal(err)
	}

	failing.Store(2)
	write(t, out, "still here\n")
	closeOutput(t, out)

	if got := threadOutputText(t, srv, tk); got != "still here\n" {
		t.Errorf("thread output = %q, want the line written", got)
	}
	if !strings.Contains(logs.String(), "trying again") {
		t.Errorf("the failed sends were not logged; log:\n%s", logs)
	}
}

// TestOutputCloseStopsTheLoop checks that when Close gives up on a Slack
// that does not answer, the output stops trying too: its loop has ended
// by the time Close returns.
func TestOutputCloseStopsTheLoop(t *testing.T) {
	srv := fakeslack.New(t, fakeslack.WithoutRateLimits())
	c, failing, _ := unreliableClient(t, srv)
	out, err := c.OpenOutput(t.Context(), postTask(t, c))
	if err != nil {
		t.Fatal(err)
	}

	failing.Store(math.MaxInt32)
	write(t, out, "never sent\n")
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := out.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want context.DeadlineExceeded", err)
	}

	select {
	case <-out.(*threadOutput).done:
	default:
		t.Errorf("the output's loop still runs after Close returned")
	}
}

// unreliableClient returns a client that reaches srv through a
// failingProxy whose failures the returned counter sets, and the buffer it
// logs to. It flushes output only on Close.
func unreliableClient(tb testing.TB, srv *fakeslack.Server) (*Client, *atomic.Int32, *logtest.Buffer) {
	tb.Helper()
	failing := &atomic.Int32{}
	proxy := failingProxy(tb, srv, failing)
	lg, logs := newLogger()
	c := NewClient(ClientOptions{BotToken: fakeslack.BotToken, AppToken: fakeslack.AppToken,
		APIURL: proxy.URL + "/api/"}, mask.New(), lg)
	c.FlushInterval = time.Hour
	return c, failing, logs
}

// failingProxy forwards to srv's Web API, but answers the next n calls with
// 503 Service Unavailable, as a Slack that is briefly down would.
func failingProxy(tb testing.TB, srv *fakeslack.Server, n *atomic.Int32) *httptest.Server {
	tb.Helper()
	target, err := url.Parse(srv.APIURL())
	if err != nil {
		tb.Fatal(err)
	}
	forward := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(-1) >= 0 {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	tb.Cleanup(proxy.Close)
	return proxy
}

// TestOutputConcurrentWriters checks that stdout and stderr may write at
// once: every line arrives whole, and each stream's lines in order.
func TestOutputConcurrentWriters(t *testing.T) {
	srv, tk, out := openOutput(t, fakeslack.WithoutRateLimits())

	var wg sync.WaitGroup
	for _, stream := range []string{"out", "err"} {
		wg.Go(func() {
			for i := range 500 {
				if _, err := fmt.Fprintf(out, "%s %03d\n", stream, i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	closeOutput(t, out)

	next := map[string]int{}
	lines := strings.Split(strings.TrimSuffix(threadOutputText(t, srv, tk), "\n"), "\n")
	for _, line := range lines {
		var stream string
		var i int
		if _, err := fmt.Sscanf(line, "%s %d", &stream, &i); err != nil || i != next[stream] {
			t.Fatalf("line %q: want %s %03d next; lines:\n%s", line, stream, next[stream], strings.Join(lines, "\n"))
		}
		next[stream]++
	}
	if next["out"] != 500 || next["err"] != 500 {
		t.Errorf("thread holds %v lines per stream, want 500 each", next)
	}
}

// TestOutputHeadAndTail checks that past OutputHead bytes a thread shows
// only the last OutputTail bytes, from a whole line, behind a note of how
// much was left out.
func TestOutputHeadAndTail(t *testing.T) {
	tests := []struct {
		name       string
		head, tail int
		want       func(written string) string
	}{
		{"all fits", 2000, 50, func(w string) string { return w }},
		{"rest fits the tail", 960, 50, func(w string) string { return w }},
		{"cut", 95, 55, func(w string) string {
			return w[:95] + "\n[… 855 bytes of output not shown; the last 50 follow …]\n" + w[950:]
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, tk, out := openOutputWith(t, func(c *Client) { c.OutputHead, c.OutputTail = tt.head, tt.tail },
				fakeslack.WithoutRateLimits())
			var b strings.Builder
			for i := range 100 {
				fmt.Fprintf(&b, "line %04d\n", i) // ten bytes
			}
			written := b.String()
			for line := range strings.Lines(written) {
				write(t, out, line)
			}
			closeOutput(t, out)

			if diff := cmp.Diff(threadOutputText(t, srv, tk), tt.want(written)); diff != "" {
				t.Errorf("thread mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

// TestOutputHeadCutInCharacter checks that a character the head's limit
// falls into is not mangled when the tail leaves bytes out.
func TestOutputHeadCutInCharacter(t *testing.T) {
	srv, tk, out := openOutputWith(t, func(c *Client) { c.OutputHead, c.OutputTail = 10, 6 },
		fakeslack.WithoutRateLimits())

	write(t, out, "ab"+strings.Repeat("€", 10)) // the head ends inside the third €
	closeOutput(t, out)

	got := threadOutputText(t, srv, tk)
	if strings.ContainsRune(got, utf8.RuneError) || !strings.HasPrefix(got, "ab€€") ||
		!strings.HasSuffix(got, "follow …]\n€€") {
		t.Errorf("thread holds %q, want ab€€, a note and €€, with no U+FFFD", got)
	}
}

// TestOutputMultiByteAcrossWrites checks that a character whose bytes come
// in two writes, with a flush between them, is shown whole.
func TestOutputMultiByteAcrossWrites(t *testing.T) {
	srv, tk, out := openOutput(t, fakeslack.WithoutRateLimits())
	euro := "€" // three bytes

	write(t, out, "a"+euro[:1])
	waitFor(t, srv, "the first flush", func() bool { return threadOutputText(t, srv, tk) != "" })
	write(t, out, euro[1:]+"b")
	closeOutput(t, out)

	if got := threadOutputText(t, srv, tk); got != "a€b" {
		t.Errorf("thread holds %q, want %q", got, "a€b")
	}
}

// TestOutputInvalidUTF8AtClose checks that bytes that never complete a
// character are shown as U+FFFD once the output is closed.
func TestOutputInvalidUTF8AtClose(t *testing.T) {
	srv, tk, out := openOutput(t, fakeslack.WithoutRateLimits())

	write(t, out, "x\xe2\x82")
	closeOutput(t, out)

	if got := threadOutputText(t, srv, tk); got != "x\uFFFD" {
		t.Errorf("thread holds %q, want %q", got, "x\uFFFD")
	}
}

// TestOutputCloseReportsFailedSend checks that Close returns the error of
// a send that Slack refused.
func TestOutputCloseReportsFailedSend(t *testing.T) {
	srv := fakeslack.New(t, fakeslack.WithoutRateLimits())
	lg, logs := newLogger()
	c := newClient(t, srv, mask.New(), lg)
	tk := baseTask()
	tk.MessageTS = "1.000001" // no such message: thread_not_found

	out, err := c.OpenOutput(t.Context(), tk)
	if err != nil {
		t.Fatal(err)
	}
	write(t, out, "lost\n")
	if err := out.Close(t.Context()); err == nil || !strings.Contains(err.Error(), "thread_not_found") {
		t.Errorf("Close = %v, want Slack's thread_not_found", err)
	}
	if !strings.Contains(logs.String(), "sending task output failed") {
		t.Errorf("the failed send was not logged; log:\n%s", logs)
	}
}

// TestOutputRetriesSlackFaults checks that errors Slack answers for its
// own passing faults do not end the streaming: the output goes out once
// Slack works again.
func TestOutputRetriesSlackFaults(t *testing.T) {
	srv, tk, out := openOutput(t, fakeslack.WithoutRateLimits())
	srv.FailNext("chat.postMessage", "internal_error", 1)
	srv.FailNext("chat.postMessage", "service_unavailable", 1)

	write(t, out, "kept\n")
	closeOutput(t, out)

	if got := threadOutputText(t, srv, tk); got != "kept\n" {
		t.Errorf("thread holds %q, want %q", got, "kept\n")
	}
	if n := srv.Calls("chat.postMessage"); n < 4 {
		t.Errorf("chat.postMessage called %d times, want the task message, two failures and the output", n)
	}
}

// TestOpenOutputNeedsMessage checks that output cannot be opened for a
// task that has no message to thread under.
func TestOpenOutputNeedsMessage(t *testing.T) {
	srv := fakeslack.New(t, fakeslack.WithoutRateLimits())
	lg, _ := newLogger()
	c := newClient(t, srv, mask.New(), lg)

	tk := baseTask()
	tk.MessageTS = ""
	if out, err := c.OpenOutput(t.Context(), tk); err == nil {
		t.Errorf("OpenOutput of a task without MessageTS = %v, want an error", out)
	}
	if n := srv.Calls("chat.postMessage"); n != 0 {
		t.Errorf("OpenOutput without a message made %d posts", n)
	}
}

func TestSplitOutput(t *testing.T) {
	tests := []struct {
		s          string
		limit      int
		head, rest string
	}{
		{"", 10, "", ""},
		{"abc", 10, "abc", ""},
		{"abcdefghij", 10, "abcdefghij", ""},
		{"abcdefghijk", 10, "abcdefghij", "k"},
		{"ab\ncdefgh", 5, "ab\n", "cdefgh"},
		{"abc\ndef", 4, "abc\n", "def"},
		{"a\nb\nc\nd", 5, "a\nb\n", "c\nd"},
		{"a\nb\ncd\n", 5, "a\nb\n", "cd\n"},
		{"x&y", 5, "x", "&y"},
		{"&&", 10, "&&", ""},
		{"&&&", 10, "&&", "&"},
		{"<>", 8, "<>", ""},
		{"<>x", 8, "<>", "x"},
		{"€€", 5, "€", "€"},
		{"€\n€", 6, "€\n", "€"},
		{"``````", 10, "`````", "`"},
		{"ab\n" + strings.Repeat("x", 20), 10, "ab\n", strings.Repeat("x", 20)},
	}
	for _, tt := range tests {
		head, rest := splitOutput(tt.s, tt.limit)
		if diff := cmp.Diff([]string{head, rest}, []string{tt.head, tt.rest}); diff != "" {
			t.Errorf("splitOutput(%q, %d) mismatch (-got +want):\n%s", tt.s, tt.limit, diff)
		}
	}
}

// TestSplitOutputFits checks splitOutput's promises on varied text: the
// head's fenced form fits, nothing is lost, and a line break is preferred.
func TestSplitOutputFits(t *testing.T) {
	texts := []string{
		strings.Repeat("line & <more>\n", 400),
		strings.Repeat("日本語", 3000),
		strings.Repeat("```", 2000),
		strings.Repeat("x", 3799) + "&" + strings.Repeat("y", 10),
	}
	for i, s := range texts {
		for rest := s; rest != ""; {
			head, next := splitOutput(rest, maxOutputMessage)
			if head == "" || head+next != rest {
				t.Fatalf("text %d: splitOutput of %d bytes = %d and %d bytes: not a split",
					i, len(rest), len(head), len(next))
			}
			if n := utf8.RuneCountInString(fence(head)); n > slackMessageLimit {
				t.Errorf("text %d: a head fences to %d characters, more than %d", i, n, slackMessageLimit)
			}
			if next != "" && strings.Contains(head, "\n") && !strings.HasSuffix(head, "\n") {
				t.Errorf("text %d: a head of %d bytes was cut inside a line though it has a line break",
					i, len(head))
			}
			rest = next
		}
	}
}

func TestCompleteUTF8(t *testing.T) {
	euro, han, emoji := "€", "日", "😀" // three, three and four bytes
	tests := []struct {
		p    string
		want int
	}{
		{"", 0},
		{"abc", 3},
		{"a" + euro, 4},
		{"a" + euro[:1], 1},
		{"a" + euro[:2], 1},
		{han + han[:2], 3},
		{emoji, 4},
		{"x" + emoji[:1], 1},
		{"x" + emoji[:3], 1},
		{"\x80\x80\x80\x80\x80", 5}, // stray continuation bytes wait for nothing
		{"ab\xff", 3},               // nor does an invalid byte
		{"a\xe2x", 3},               // a start byte followed by a non-continuation
	}
	for _, tt := range tests {
		if got := completeUTF8([]byte(tt.p)); got != tt.want {
			t.Errorf("completeUTF8(%q) = %d, want %d", tt.p, got, tt.want)
		}
	}
}

// BenchmarkOutputWriteChatty measures a write of one short line once the
// head is full and every write goes to the tail.
func BenchmarkOutputWriteChatty(b *testing.B) {
	srv := fakeslack.New(b, fakeslack.WithoutRateLimits())
	lg, _ := newLogger()
	c := newClient(b, srv, mask.New(), lg)
	c.OutputHead, c.FlushInterval = 0, time.Hour
	out, err := c.OpenOutput(b.Context(), postTask(b, c))
	if err != nil {
		b.Fatal(err)
	}
	line := []byte("still working on it, step 12345 of 99999\n")

	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := out.Write(line); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := out.Close(b.Context()); err != nil {
		b.Fatal(err)
	}
}
