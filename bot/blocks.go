package bot

import (
	"fmt"
	"strings"

	"github.com/slack-go/slack"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/task"
)

// stateLabels is how each task state reads in Slack.
var stateLabels = map[taskbot.State]string{
	taskbot.StatePending:          ":hourglass: pending",
	taskbot.StateAwaitingApproval: ":raised_hand: awaiting approval",
	taskbot.StateRunning:          ":arrows_counterclockwise: running",
	taskbot.StateFinished:         ":white_check_mark: finished",
	taskbot.StateFailed:           ":x: failed",
	taskbot.StateRefused:          ":no_entry: refused",
}

// renderTask returns a task message: a plain-text fallback for
// notifications and the Block Kit blocks people see. v must be masked.
func renderTask(v task.View) (string, []slack.Block) {
	t := v.Task
	status := statusText(t)
	fallback := fmt.Sprintf("Task %s on %s by <@%s>: %s", t.ID, t.Stack, t.User, status)

	head := fmt.Sprintf("*Task %s* on *%s* by <@%s>", t.ID, EscapeText(t.Stack), t.User)
	blocks := []slack.Block{
		sectionBlock(head + "\n" + codeBlock(t.Command)),
		contextBlock(status + skipInitNote(t)),
	}
	if t.State == taskbot.StateAwaitingApproval {
		blocks = append(blocks, sectionBlock(approvalText(v)))
	}
	if len(v.Approvers) > 0 {
		blocks = append(blocks, contextBlock("Approved by "+mentions(v.Approvers)))
	}
	return fallback, blocks
}

// statusText says where the task is, with its exit code once it ended.
func statusText(t taskbot.Task) string {
	s := stateLabels[t.State]
	if s == "" {
		s = string(t.State)
	}
	if t.State == taskbot.StateFinished || (t.State == taskbot.StateFailed && t.ExitCode != 0) {
		s += fmt.Sprintf(" (exit code %d)", t.ExitCode)
	}
	if t.Detail != "" {
		s += ": " + t.Detail // mrkdwn already, with people's text escaped
	}
	return s
}

func skipInitNote(t taskbot.Task) string {
	if t.SkipInit {
		return " · init skipped"
	}
	return ""
}

// approvalText tells people why the task waits and how to approve it.
func approvalText(v task.View) string {
	var b strings.Builder
	b.WriteString("*Needs approval:*")
	for _, r := range v.Reasons {
		b.WriteString("\n• " + EscapeText(r))
	}
	fmt.Fprintf(&b, "\nA writer of *%s* other than <@%s> approves by reacting with :%s:.",
		EscapeText(v.Task.Stack), v.Task.User, v.Emoji)
	return b.String()
}

func mentions(users []string) string {
	m := make([]string, len(users))
	for i, u := range users {
		m[i] = "<@" + u + ">"
	}
	return strings.Join(m, ", ")
}

// maxCommandShown keeps a task message's section under Slack's 3,000
// characters: it bounds the command's escaped form.
const maxCommandShown = 2000

// codeBlock shows a command verbatim, cut short if its escaped form is very
// long. Slack decodes the three entities even in code blocks, so the text is
// escaped.
func codeBlock(text string) string {
	if head, rest := splitOutput(text, maxCommandShown); rest != "" {
		text = head + "…"
	}
	return fence(text)
}

// fence puts text in a code block, escaped, with a zero-width space between
// any two backticks, and between a backtick and the fences: no run of
// backticks inside can end the block early or join the fences.
func fence(text string) string {
	var b strings.Builder
	b.WriteString("```")
	prev := '`' // the opening fence
	for _, r := range text {
		if r == '`' && prev == '`' {
			b.WriteRune(zeroWidthSpace)
		}
		b.WriteRune(r)
		prev = r
	}
	if prev == '`' && text != "" {
		b.WriteRune(zeroWidthSpace)
	}
	return EscapeText(b.String()) + "```"
}

// zeroWidthSpace separates characters without showing.
const zeroWidthSpace = '\u200b'

func sectionBlock(mrkdwn string) slack.Block {
	return slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, fit(mrkdwn), false, false), nil, nil)
}

func contextBlock(mrkdwn string) slack.Block {
	return slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, fit(mrkdwn), false, false))
}

// maxBlockText is the most text Slack takes in a section or context
// element.
const maxBlockText = 3000

// fit cuts a block's text to what Slack takes: a policy reason may quote a
// whole command, and Slack refuses the message rather than cut it.
func fit(mrkdwn string) string {
	r := []rune(mrkdwn)
	if len(r) <= maxBlockText {
		return mrkdwn
	}
	return string(r[:maxBlockText-1]) + "…"
}
