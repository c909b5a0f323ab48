package shell

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/mask"
	"github.com/taskbot/taskbot/task"
)

// Chat prints what taskbot would post in Slack. It implements task.Chat and
// task.Directory (the shell knows no user groups).
type Chat struct {
	masker *mask.Masker

	mu       sync.Mutex
	out      io.Writer         // guarded by mu
	messages map[string]string // task ID → message ts; guarded by mu
	seq      int               // guarded by mu
	watcher  *watcher          // guarded by mu
}

// watcher is the shell line waiting for its task's message to show.
type watcher struct {
	match func(task.View) bool
	shown chan struct{} // closed once a matching message showed
}

// watch returns a channel closed when a task message that match accepts is
// posted or updated. The shell handles one line at a time, so one watcher
// is enough.
func (c *Chat) watch(match func(task.View) bool) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watcher = &watcher{match: match, shown: make(chan struct{})}
	return c.watcher.shown
}

func (c *Chat) unwatch() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watcher = nil
}

// shown tells the watcher, if any, that v was shown.
func (c *Chat) shown(v task.View) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w := c.watcher; w != nil && w.match(v) {
		close(w.shown)
		c.watcher = nil
	}
}

var (
	_ task.Chat      = (*Chat)(nil)
	_ task.Directory = (*Chat)(nil)
)

// NewChat returns a Chat printing to out, masked.
func NewChat(out io.Writer, m *mask.Masker) *Chat {
	return &Chat{out: out, masker: m, messages: map[string]string{}}
}

// PostTask implements task.Chat.
func (c *Chat) PostTask(_ context.Context, v task.View) (string, error) {
	c.mu.Lock()
	c.seq++
	ts := fmt.Sprintf("%d.000000", c.seq)
	c.messages[v.Task.ID] = ts
	c.mu.Unlock()

	c.print(taskPrefix(v.Task), renderTask(v))
	c.shown(v)
	return ts, nil
}

// UpdateTask implements task.Chat.
func (c *Chat) UpdateTask(_ context.Context, v task.View) error {
	c.print(taskPrefix(v.Task), renderTask(v))
	c.shown(v)
	return nil
}

// OpenOutput implements task.Chat: output lines print under the task.
func (c *Chat) OpenOutput(_ context.Context, t taskbot.Task) (task.Output, error) {
	return &output{chat: c, prefix: taskPrefix(t) + "│ "}, nil
}

// Notify implements task.Chat: in a terminal everything is seen by the one
// person at it.
func (c *Chat) Notify(_ context.Context, _, user, text string) error {
	c.print("", "(only @"+user+" sees this) "+text)
	return nil
}

// GroupMembers implements task.Directory. The shell has no user groups, so
// only writers listed by user ID can run tasks in it.
func (c *Chat) GroupMembers(context.Context, string) ([]string, error) {
	return nil, nil
}

func (c *Chat) messageOf(taskID string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts, ok := c.messages[taskID]
	return ts, ok
}

// print writes text, masked and with Slack markup made plain, each line
// behind prefix.
func (c *Chat) print(prefix, text string) {
	c.printRaw(prefix, plain(text))
}

// printRaw writes text masked, as it is otherwise: task output is no markup.
func (c *Chat) printRaw(prefix, text string) {
	text = c.masker.String(text)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, line := range strings.Split(text, "\n") {
		fmt.Fprintln(c.out, prefix+line)
	}
}

func taskPrefix(t taskbot.Task) string { return "[task " + t.ID + "] " }

// renderTask is the shell's form of a task message.
func renderTask(v task.View) string {
	t := v.Task
	s := fmt.Sprintf("%s on %s by <@%s>: %s", t.Command, t.Stack, t.User, t.State)
	if t.State == taskbot.StateFinished || (t.State == taskbot.StateFailed && t.ExitCode != 0) {
		s += fmt.Sprintf(" (exit code %d)", t.ExitCode)
	}
	if t.Detail != "" {
		s += ": " + t.Detail
	}
	if t.State == taskbot.StateAwaitingApproval {
		s += "\nneeds approval: " + strings.Join(v.Reasons, "; ")
		s += fmt.Sprintf("\nanother writer approves with: /react %s %s", t.ID, v.Emoji)
	}
	// The terminal keeps every version of the message: the approvers show
	// once, when the approval takes effect, not again with the final state.
	if len(v.Approvers) > 0 && t.State != taskbot.StateFinished && t.State != taskbot.StateFailed {
		s += "\napproved by <@" + strings.Join(v.Approvers, ">, <@") + ">"
	}
	return s
}

var (
	mention  = regexp.MustCompile(`<[@#!](?:subteam\^)?([A-Z0-9]+)>`)
	entities = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")
)

// plain turns Slack markup into text for a terminal: mentions become @ID,
// and escaped characters are themselves again.
func plain(s string) string { return entities.Replace(mention.ReplaceAllString(s, "@$1")) }

// output prints a task's output line by line under its task. A partial
// last line waits for its end, or for Close.
type output struct {
	chat   *Chat
	prefix string

	mu      sync.Mutex
	partial []byte // guarded by mu
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.partial = append(o.partial, p...)
	if i := strings.LastIndexByte(string(o.partial), '\n'); i >= 0 {
		o.chat.printRaw(o.prefix, string(o.partial[:i]))
		o.partial = o.partial[i+1:]
	}
	return len(p), nil
}

func (o *output) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.partial) > 0 {
		o.chat.printRaw(o.prefix, string(o.partial))
		o.partial = nil
	}
	return nil
}
