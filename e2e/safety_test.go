package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/taskbot/taskbot"
	slackbot "github.com/taskbot/taskbot/bot"
)

// TestSecretsMasked prints both secrets from inside the container and
// checks that neither reaches Slack or the audit log, and that a command
// holding a secret's value is refused without echoing it.
func TestSecretsMasked(t *testing.T) {
	b := startBot(t)
	const cmd = `echo "env=$API_TOKEN file=$DB_PASSWORD"; echo "$DB_PASSWORD" >&2`
	b.slash(t, alice, "/task", "dev --skip-init "+slackbot.EscapeText(cmd))
	m := b.waitTask(t, cmd)

	out := b.output(m)
	if !strings.Contains(out, "env=*** file=***") || strings.Count(out, "***") != 3 {
		t.Errorf("thread output %q: want both secrets masked, on stdout and stderr", out)
	}

	b.slash(t, bob, "/task", "dev echo env "+envSecret)
	b.ephemeral(t, bob, "contains the value of a secret taskbot keeps")
	b.slash(t, bob, "/task", "dev echo file "+fileSecret)
	b.wait(t, "a second refusal to bob", func() bool { return len(b.slack.Ephemerals(bob)) == 2 })
	for _, m := range b.slack.Ephemerals(bob) {
		if !strings.Contains(m.Plain(), "contains the value of a secret taskbot keeps") {
			t.Errorf("reply to bob = %q, want the refusal of a secret in the command", m.Plain())
		}
	}

	b.assertNoSecret(t)
	var commands []string
	for _, ev := range b.allEvents(t) {
		if ev.Type == taskbot.EventRequested {
			commands = append(commands, ev.Get("command"))
		}
	}
	for _, want := range []string{"echo env ***", "echo file ***"} {
		if !slices.Contains(commands, want) {
			t.Errorf("audited commands %q: want the refused one recorded masked, as %q", commands, want)
		}
	}
}

// assertNoSecret checks every message, ephemeral, audit event and log line.
func (b *bot) assertNoSecret(t testing.TB) {
	t.Helper()
	var seen []string
	for _, m := range b.slack.Messages(b.channel) {
		seen = append(seen, m.Text, string(m.Blocks))
	}
	for _, u := range []string{alice, bob} {
		for _, m := range b.slack.Ephemerals(u) {
			seen = append(seen, m.Text, string(m.Blocks))
		}
	}
	for _, ev := range b.allEvents(t) {
		for _, f := range ev.Fields {
			seen = append(seen, f.Value)
		}
	}
	seen = append(seen, b.logs.String())
	for _, s := range seen {
		for _, secret := range []string{envSecret, fileSecret} {
			if strings.Contains(s, secret) {
				t.Errorf("secret leaked in %q", s)
			}
		}
	}
}

func (b *bot) allEvents(t testing.TB) []taskbot.Event {
	t.Helper()
	events, err := b.store.Events(t.Context(), 10000)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// TestSlackEscaping sends text the way Slack delivers it: entities, links
// and a client's curly quotes and em dash.
func TestSlackEscaping(t *testing.T) {
	b := startBot(t)
	b.slash(t, alice, "/task", "dev —skip-init echo ‘&lt;b&gt;’ &amp;&amp; echo “two  spaces” <http://example.com|example.com> “<https://x.io/a?b=1&amp;c=2>”")

	const want = `echo '<b>' && echo "two  spaces" example.com "https://x.io/a?b=1&c=2"`
	m := b.waitTask(t, want)
	out := b.output(m)
	for _, line := range []string{"<b>", "two  spaces example.com https://x.io/a?b=1&c=2"} {
		if !strings.Contains(out, line) {
			t.Errorf("thread output %q lacks %q", out, line)
		}
	}
	if strings.Contains(out, "initialising") {
		t.Errorf("—skip-init (an em dash) did not skip init: %q", out)
	}
}

// TestLockRefusesOthers: while alice holds /lock, bob's task is refused and
// bob cannot unlock; alice's task runs; after /unlock bob's runs.
func TestLockRefusesOthers(t *testing.T) {
	b := startBot(t)
	b.slash(t, alice, "/lock", "locked deploying the fix")
	b.waitChannel(t, "locked stack *locked*")

	b.slash(t, bob, "/task", "locked echo bob-was-here")
	b.ephemeral(t, bob, "Stack *locked* is locked by <@"+alice+">: deploying the fix")
	b.slash(t, bob, "/unlock", "locked")
	b.ephemeral(t, bob, "only they can unlock it")

	b.slash(t, alice, "/lock", "")
	b.ephemeral(t, alice, "locked by <@"+alice+">")

	b.slash(t, alice, "/task", "locked echo alice-was-here")
	if m := b.waitTask(t, "echo alice-was-here"); !strings.Contains(m.Plain(), "finished") {
		t.Errorf("lock holder's task = %q, want finished", m.Plain())
	}

	b.slash(t, alice, "/unlock", "locked")
	b.waitChannel(t, "unlocked stack *locked*")
	b.slash(t, bob, "/task", "locked echo bob-was-here")
	if m := b.waitTask(t, "echo bob-was-here"); !strings.Contains(m.Plain(), "finished") {
		t.Errorf("task after unlock = %q, want finished", m.Plain())
	}
}

// waitChannel waits for a public reply containing want.
func (b *bot) waitChannel(t testing.TB, want string) {
	t.Helper()
	b.wait(t, "a channel message containing "+want, func() bool {
		for _, m := range b.slack.Messages(b.channel) {
			if strings.Contains(m.Plain(), want) {
				return true
			}
		}
		return false
	})
}

// TestNoMarkupInjection: text people type reaches Slack escaped, so a lock
// reason cannot notify the whole channel.
func TestNoMarkupInjection(t *testing.T) {
	b := startBot(t)
	b.slash(t, alice, "/lock", "locked &lt;!channel&gt; wake up")
	b.waitChannel(t, "locked stack *locked*")
	b.slash(t, bob, "/task", "locked echo hi")
	b.ephemeral(t, bob, "is locked by")

	var texts []string
	for _, m := range b.slack.Messages(b.channel) {
		texts = append(texts, m.Text)
	}
	for _, m := range b.slack.Ephemerals(bob) {
		texts = append(texts, m.Text)
	}
	for _, text := range texts {
		if strings.Contains(text, "<!channel>") || !strings.Contains(text, "&lt;!channel&gt;") {
			t.Errorf("message %q: want the reason escaped, as &lt;!channel&gt;", text)
		}
	}
}
