package e2e

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/internal/fakeslack"
)

var taskIDPattern = regexp.MustCompile(`Task (\d+)`)

func taskID(t testing.TB, m interface{ Plain() string }) string {
	t.Helper()
	match := taskIDPattern.FindStringSubmatch(m.Plain())
	if match == nil {
		t.Fatalf("no task ID in message %q", m.Plain())
	}
	return match[1]
}

func TestHappyPath(t *testing.T) {
	b := startBot(t)
	// Slack sends & escaped, as it does every &, < and > people type.
	b.slash(t, alice, "/task", "dev echo $GREETING from $(pwd); cat .initialised &amp;&amp; echo init-ran")

	m := b.waitTask(t, "echo $GREETING from $(pwd); cat .initialised && echo init-ran")
	if !strings.Contains(m.Plain(), "finished (exit code 0)") {
		t.Errorf("task message = %q, want it finished with exit code 0", m.Plain())
	}
	out := b.output(m)
	for _, want := range []string{"initialising", "hello from /tmp", "init-ran"} {
		if !strings.Contains(out, want) {
			t.Errorf("thread output %q lacks %q", out, want)
		}
	}
	if strings.Index(out, "initialising") > strings.Index(out, "hello from") {
		t.Errorf("init output came after the command's: %q", out)
	}

	id := taskID(t, m)
	want := []taskbot.EventType{
		taskbot.EventRequested, taskbot.EventDecided, taskbot.EventLockAcquired,
		taskbot.EventStarted, taskbot.EventFinished, taskbot.EventLockReleased,
	}
	events := b.events(t, id)
	if diff := cmp.Diff(eventTypes(events), want); diff != "" {
		t.Errorf("audit events of task %s mismatch (-got +want):\n%s", id, diff)
	}
	for _, ev := range events {
		if ev.User != alice || ev.Stack != "dev" || ev.Time.IsZero() {
			t.Errorf("audit event %+v lacks user, stack or time", ev)
		}
	}
	if got := events[len(events)-2].Get("exit_code"); got != "0" {
		t.Errorf("finished event exit_code = %q, want 0", got)
	}
}

func TestExitCodeReported(t *testing.T) {
	b := startBot(t)
	b.slash(t, alice, "/task", "dev --skip-init echo partial; exit 42")

	m := b.waitTask(t, "echo partial; exit 42")
	if !strings.Contains(m.Plain(), "failed (exit code 42)") {
		t.Errorf("task message = %q, want failed with exit code 42", m.Plain())
	}
	if out := b.output(m); !strings.Contains(out, "partial") {
		t.Errorf("thread output %q lacks the output before the failure", out)
	}
	events := b.events(t, taskID(t, m))
	failed := events[len(events)-2]
	if failed.Type != taskbot.EventFailed || failed.Get("exit_code") != "42" {
		t.Errorf("second-last audit event = %+v, want failed with exit_code 42", failed)
	}
}

func TestSkipInit(t *testing.T) {
	b := startBot(t)
	b.slash(t, alice, "/task", "dev --skip-init test -e .initialised || echo no-init-here")

	m := b.waitTask(t, "test -e .initialised || echo no-init-here")
	out := b.output(m)
	if strings.Contains(out, "initialising") || !strings.Contains(out, "no-init-here") {
		t.Errorf("thread output %q: want the init phase skipped", out)
	}
	if !strings.Contains(m.Plain(), "init skipped") {
		t.Errorf("task message %q does not say init was skipped", m.Plain())
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		note, user, text, want string
	}{
		{"not a writer", mallory, "dev echo hi", "You are not a writer of stack *dev*"},
		{"unknown stack", alice, "nope echo hi", `There is no stack "nope"`},
		{"policy deny", alice, "prod terraform destroy", "A policy denied this task"},
		{"usage", alice, "dev", "tell me what to run"},
		// Slack escapes every typed '<'; a gateway might not.
		{"undecodable", alice, "dev echo <oops", "could not read that command: it has a '<' without a closing '>'"},
	}
	b := startBot(t)
	for _, tt := range tests {
		t.Run(tt.note, func(t *testing.T) {
			b.slash(t, tt.user, "/task", tt.text)
			b.ephemeral(t, tt.user, tt.want)
		})
	}
	if msgs := b.slack.Messages(b.channel); len(msgs) != 0 {
		t.Errorf("refused tasks posted in the channel: %s", b.dump())
	}
}

// TestNotInvited checks that a task in a channel the bot was not invited
// to, where it could neither post nor see approvals, asks for an invitation,
// runs nothing and leaves the stack free.
func TestNotInvited(t *testing.T) {
	b := startBot(t)
	b.slack.RemoveBot(b.channel)

	b.slash(t, alice, "/task", "dev echo never")
	b.ephemeral(t, alice, "Invite me with `/invite @taskbot`")

	var refused bool
	for _, ev := range b.allEvents(t) {
		if ev.Type == taskbot.EventStarted {
			t.Errorf("a task started in a channel the bot is not in: %+v", ev)
		}
		refused = refused || ev.Type == taskbot.EventRefused && strings.Contains(ev.Get("reason"), "Invite me")
	}
	if !refused {
		t.Errorf("no refused event that asks for an invitation in the audit log")
	}
	if l, err := b.store.LockOf(t.Context(), "dev"); err != nil || l != nil {
		t.Errorf("LockOf(dev) = %+v, %v; want the stack free", l, err)
	}
}

func TestUserGroupWriter(t *testing.T) {
	b := startBot(t)
	b.slash(t, carol, "/task", "team echo via-group")
	m := b.waitTask(t, "echo via-group")
	if !strings.Contains(m.Plain(), "finished") {
		t.Errorf("task of a user-group member = %q, want finished", m.Plain())
	}
}

func TestApproval(t *testing.T) {
	b := startBot(t)
	const cmd = "echo terraform taint aws_instance.x"
	b.slash(t, alice, "/task", "dev "+cmd)

	var m = b.awaitingApproval(t, cmd)
	id := taskID(t, m)

	// The requester's own approval does not count, nor does a non-writer's.
	b.react(t, alice, m.TS)
	b.react(t, mallory, m.TS)
	b.ephemeral(t, alice, "did not count as an approval: requesters cannot approve their own tasks")
	b.ephemeral(t, mallory, "did not count as an approval: only writers of stack dev can approve")
	if n := countType(b.events(t, id), taskbot.EventApprovalIgnored); n != 2 {
		t.Errorf("%d approval_ignored events, want 2", n)
	}
	if m, _ := b.taskMessage(cmd); !strings.Contains(m.Plain(), "awaiting approval") {
		t.Fatalf("task ran on its requester's own approval: %q", m.Plain())
	}

	b.react(t, bob, m.TS)
	m = b.waitTask(t, cmd)
	if !strings.Contains(m.Plain(), "finished") || !strings.Contains(m.Plain(), "Approved by <@"+bob+">") {
		t.Errorf("approved task message = %q, want finished and approved by bob", m.Plain())
	}
	counted := findType(b.events(t, id), taskbot.EventApprovalCounted)
	if counted == nil || counted.User != bob || counted.Get("approver") != bob {
		t.Errorf("approval_counted event = %+v, want one by %s", counted, bob)
	}
}

func (b *bot) awaitingApproval(t testing.TB, cmd string) (m fakeslack.Message) {
	t.Helper()
	b.wait(t, "task awaiting approval", func() bool {
		var ok bool
		m, ok = b.taskMessage(cmd)
		return ok && strings.Contains(m.Plain(), "awaiting approval")
	})
	return m
}

func (b *bot) react(t testing.TB, user, ts string) {
	t.Helper()
	if _, err := b.slack.React(t.Context(), user, b.channel, ts, "white_check_mark"); err != nil {
		t.Fatal(err)
	}
}

func countType(events []taskbot.Event, typ taskbot.EventType) int {
	n := 0
	for _, ev := range events {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

func findType(events []taskbot.Event, typ taskbot.EventType) *taskbot.Event {
	for i := range events {
		if events[i].Type == typ {
			return &events[i]
		}
	}
	return nil
}

// TestLargeOutput: a thread shows the head of a long output as it comes and
// its tail at the end, with a note of what was left out, and the final
// status only once all of that was posted.
func TestLargeOutput(t *testing.T) {
	b := startBot(t)
	const cmd = "seq 1 100000"
	b.slash(t, alice, "/task", "dev --skip-init "+cmd)
	m := b.waitTask(t, cmd)

	out := b.output(m)
	for _, want := range []string{"1\n2\n3\n", "bytes of output not shown", "\n99999\n100000\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("thread output lacks %q", want)
		}
	}
	if n := len(out); n > 48<<10 {
		t.Errorf("thread shows %d bytes of output, want it bounded", n)
	}
	for _, r := range b.slack.Thread(b.channel, m.TS) {
		if len(r.Text) > 4000 {
			t.Errorf("an output message has %d characters, Slack takes 4000", len(r.Text))
		}
	}
}
