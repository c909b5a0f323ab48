// Package shell is a local terminal chat for trying taskbot without Slack,
// in the spirit of Hubot's and Errbot's shell adapters: each input line is a
// slash command, and the bot's messages are printed, thread replies under
// their task.
//
// It drives the same parser and task lifecycle as the Slack adapter, so
// policies, locks, the runner, masking and the audit log behave as in Slack.
package shell

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/command"
	"github.com/taskbot/taskbot/task"
)

// Channel is the channel ID every shell command comes from.
const Channel = "CSHELL"

// Tasks is the task lifecycle, as the shell uses it.
type Tasks interface {
	Handle(ctx context.Context, req task.Request) (task.Reply, error)
	React(ctx context.Context, r task.Reaction) error
}

// Shell reads commands and prints what the bot says.
type Shell struct {
	chat  *Chat
	tasks Tasks
	log   logrus.FieldLogger
	user  string // who types; /user changes it
}

// New returns a Shell that acts as user and prints through chat.
func New(chat *Chat, tasks Tasks, user string, lg logrus.FieldLogger) *Shell {
	return &Shell{chat: chat, tasks: tasks, user: user, log: lg}
}

// maxLine is the longest input line the shell reads; the rest of a longer
// one is skipped. Commands are far shorter (task.MaxCommandLength).
const maxLine = 64 * 1024

// errInterrupted ends a shell whose context was cancelled (Ctrl-C).
var errInterrupted = errors.New("interrupted")

// Run reads one command per line until in ends or ctx is cancelled, then
// waits for the tasks still running; cancelling ctx cancels them too.
func (s *Shell) Run(ctx context.Context, in io.Reader) error {
	var running sync.WaitGroup
	defer running.Wait()

	// Reading blocks, and a terminal read cannot be interrupted: a reader
	// goroutine hands lines over, so that Ctrl-C is seen at once. It may
	// stay blocked in its read until the process exits.
	lines := make(chan inputLine)
	readErr := make(chan error, 1)
	go func() { readErr <- readLines(ctx, in, lines) }()

	for {
		select {
		case <-ctx.Done():
			return errInterrupted
		case l, ok := <-lines:
			if !ok {
				return <-readErr
			}
			s.input(ctx, l, &running)
		}
	}
}

// inputLine is one line of input, trimmed; tooLong reports that it was
// longer than maxLine and was not kept.
type inputLine struct {
	text    string
	tooLong bool
}

// input handles one line of input.
func (s *Shell) input(ctx context.Context, l inputLine, running *sync.WaitGroup) {
	switch {
	case l.tooLong:
		s.chat.print("", fmt.Sprintf("That line is longer than %d KiB, so it was skipped. "+
			"Commands take at most %d characters.", maxLine/1024, task.MaxCommandLength))
	case l.text == "" || strings.HasPrefix(l.text, "#"):
	default:
		s.line(ctx, l.text, running)
	}
}

// readLines sends the lines of in until in ends or ctx is cancelled, then
// closes lines.
func readLines(ctx context.Context, in io.Reader, lines chan<- inputLine) error {
	defer close(lines)
	r := bufio.NewReaderSize(in, maxLine)
	for {
		l, err := readLine(r)
		if l.text != "" || l.tooLong {
			select {
			case lines <- l:
			case <-ctx.Done():
				return nil
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read input: %w", err)
		}
	}
}

// readLine reads one line, skipping the rest of a line longer than maxLine.
func readLine(r *bufio.Reader) (inputLine, error) {
	line, err := r.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return inputLine{text: strings.TrimSpace(string(line))}, err
	}
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = r.ReadSlice('\n')
	}
	return inputLine{tooLong: true}, err
}

// line handles one input line. A task, or a reaction that may start one,
// is followed until it is refused, waits for approval or starts running, then
// goes on in the background so the shell keeps reading; the rest are quick
// and handled in turn.
func (s *Shell) line(ctx context.Context, line string, running *sync.WaitGroup) {
	name, text, _ := strings.Cut(line, " ")
	user := s.user
	switch name {
	case "/user":
		s.setUser(strings.TrimSpace(text))
	case "/react":
		id, _, _ := strings.Cut(strings.TrimSpace(text), " ")
		s.background(running, func(v task.View) bool { return v.Task.ID == id && v.Task.State == taskbot.StateRunning },
			func() { s.react(ctx, user, text) })
	case "/task":
		s.background(running, func(v task.View) bool { return v.Task.User == user && v.Task.State == taskbot.StateRunning },
			func() { s.command(ctx, user, name, text) })
	default:
		s.command(ctx, user, name, text)
	}
}

// background runs fn in its own goroutine and returns once fn has returned
// or the chat showed a task message that mine matches, whichever is first.
func (s *Shell) background(running *sync.WaitGroup, mine func(task.View) bool, fn func()) {
	shown := s.chat.watch(mine)
	defer s.chat.unwatch()

	done := make(chan struct{})
	running.Add(1)
	go func() {
		defer running.Done()
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-shown:
	}
}

var userID = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)

func (s *Shell) setUser(id string) {
	if !userID.MatchString(id) {
		s.chat.print("", "usage: /user U0123ABCD (a Slack user ID)")
		return
	}
	s.user = id
	s.chat.print("", "you are now <@"+id+">")
}

// command runs one slash command and prints the reply, as Slack would show
// it to the requester.
func (s *Shell) command(ctx context.Context, user, name, text string) {
	// Usage errors quote the text, so they must quote it masked: print
	// masks too, but not a secret quoted with %q.
	cmd, err := command.ParseMasked(name, text, s.chat.masker.String)
	var reply task.Reply
	if err == nil {
		reply, err = s.tasks.Handle(ctx, task.Request{User: user, Channel: Channel, Command: cmd})
	}
	if err != nil {
		s.chat.print("", errorText(s.log, err))
		return
	}
	if reply.Text != "" {
		s.chat.print("", reply.Text)
	}
}

// react adds an emoji reaction to a task's message: `/react <task> <emoji>`.
func (s *Shell) react(ctx context.Context, user, text string) {
	fields := strings.Fields(text)
	if len(fields) != 2 {
		s.chat.print("", "usage: /react <task ID> <emoji>, e.g. /react 3 white_check_mark")
		return
	}
	ts, ok := s.chat.messageOf(fields[0])
	if !ok {
		s.chat.print("", fmt.Sprintf("task %s has no message to react to", fields[0]))
		return
	}
	// As in Slack, a skin tone is the same emoji: "+1::skin-tone-2" is "+1".
	emoji, _, _ := strings.Cut(strings.Trim(fields[1], ":"), "::")
	r := task.Reaction{User: user, Channel: Channel, TS: ts, Emoji: emoji}
	if err := s.tasks.React(ctx, r); err != nil {
		s.chat.print("", errorText(s.log, err))
	}
}

// errorText mirrors the Slack adapter: sentences for users as they are,
// anything else logged.
func errorText(lg logrus.FieldLogger, err error) string {
	if msg, ok := taskbot.UserMessage(err); ok {
		return msg
	}
	lg.WithError(err).Error("request failed")
	return "Something went wrong; the log says what."
}
