package command

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/mask"
)

// result is what Parse returned, in a form cmp can compare: the first line
// of a usage error is its sentence, the rest is Usage.
type result struct {
	Cmd Command
	Err string
}

func parse(tb testing.TB, name, text string) result {
	tb.Helper()
	cmd, err := Parse(name, text)
	return resultOf(tb, name, text, cmd, err)
}

// parseMasked is parse through ParseMasked, masking m's secrets.
func parseMasked(tb testing.TB, m *mask.Masker, name, text string) result {
	tb.Helper()
	cmd, err := ParseMasked(name, text, m.String)
	return resultOf(tb, name, text, cmd, err)
}

func resultOf(tb testing.TB, name, text string, cmd Command, err error) result {
	tb.Helper()
	if err == nil {
		return result{Cmd: cmd}
	}

	var uerr *taskbot.Error
	if !errors.As(err, &uerr) || uerr.Code != taskbot.EInvalid {
		tb.Fatalf("Parse(%q, %q) error %v is a %T, want a *taskbot.Error with code EInvalid", name, text, err, err)
	}
	sentence, usage, _ := strings.Cut(uerr.Message, "\n")
	if usage != Usage(name) {
		tb.Errorf("Parse(%q, %q) error ends in %q, want the usage %q",
			name, text, usage, Usage(name))
	}
	return result{Cmd: cmd, Err: sentence}
}

func TestParse(t *testing.T) {
	task := func(stack, text string) Command {
		return Command{Name: "task", Stack: stack, Text: text}
	}
	skip := func(stack, text string) Command {
		return Command{Name: "task", Stack: stack, SkipInit: true, Text: text}
	}
	lock := func(stack, reason string) Command {
		return Command{Name: "lock", Stack: stack, Text: reason}
	}
	fail := func(sentence string) result { return result{Err: sentence} }
	notStack := func(stack string) result {
		return fail(fmt.Sprintf("%q is not a stack name: use up to 63 letters, digits, "+
			"'.', '_' and '-', starting with a letter or digit", stack))
	}
	ok := func(cmd Command) result { return result{Cmd: cmd} }

	tests := []struct {
		name, text string
		want       result
	}{
		// /task
		{"/task", "prod terraform plan", ok(task("prod", "terraform plan"))},
		{"task", "prod terraform plan", ok(task("prod", "terraform plan"))},
		{"/task", "  prod   terraform  plan -out=x  ", ok(task("prod", "terraform  plan -out=x"))},
		{"/task", "prod\tterraform plan\n  -target=a\n",
			ok(task("prod", "terraform plan\n  -target=a"))},
		{"/task", "prod\nls", ok(task("prod", "ls"))},
		{"/task", "prod --skip-init terraform plan", ok(skip("prod", "terraform plan"))},
		{"/task", "prod --skip-init --skip-init ls", ok(skip("prod", "ls"))},
		{"/task", "prod —skip-init ls", ok(skip("prod", "ls"))},
		{"/task", "prod –skip-init ls", ok(skip("prod", "ls"))},
		{"/task", "prod -- --force x", ok(task("prod", "--force x"))},
		{"/task", "prod — --force x", ok(task("prod", "--force x"))},
		{"/task", "prod --skip-init -- --skip-init", ok(skip("prod", "--skip-init"))},
		{"/task", "prod -- -- x", ok(task("prod", "-- x"))},
		{"/task", "prod --\nls -l", ok(task("prod", "ls -l"))},
		{"/task", "prod ls --force", ok(task("prod", "ls --force"))},
		{"/task", "prod -f x", ok(task("prod", "-f x"))},
		{"/task", "prod echo “hello world” ‘x’ „y‟ ‚z‛",
			ok(task("prod", `echo "hello world" 'x' "y" 'z'`))},
		{"/task", "prod\u00a0terraform\u202fplan", ok(task("prod", "terraform plan"))},
		{"/task", "prod\u2003ls\u2009-l", ok(task("prod", "ls -l"))},
		{"/task", "prod echo a — b", ok(task("prod", "echo a -- b"))},
		{"/task", "prod echo ünïcödé → ok", ok(task("prod", "echo ünïcödé → ok"))},
		{"/task", "my_stack.eu-1 ls", ok(task("my_stack.eu-1", "ls"))},
		{"/task", strings.Repeat("s", 63) + " ls", ok(task(strings.Repeat("s", 63), "ls"))},
		{"/task", "", ok(Command{Name: "task", Help: true})},
		{"/task", " \n ", ok(Command{Name: "task", Help: true})},
		{"/task", "help", ok(Command{Name: "task", Help: true})},
		{"/task", "--help", ok(Command{Name: "task", Help: true})},
		{"/task", "prod", fail("tell me what to run: /task prod terraform plan")},
		{"/task", "prod --skip-init", fail("tell me what to run: /task prod terraform plan")},
		{"/task", "prod --  ", fail("tell me what to run: /task prod terraform plan")},
		{"/task", "prod --force x",
			fail("unknown option --force; to pass it to your command write /task prod -- --force …")},
		{"/task", "prod –force x",
			fail("unknown option --force; to pass it to your command write /task prod -- --force …")},
		{"/task", "prod --skip-init --dry-run x",
			fail("unknown option --dry-run; to pass it to your command write /task prod -- --dry-run …")},
		{"/task", "--skip-init prod ls", fail("name the stack first: /task prod --skip-init …")},
		{"/task", "pr/od ls", notStack("pr/od")},
		{"/task", "_prod ls", notStack("_prod")},
		{"/task", strings.Repeat("s", 64) + " ls", notStack(strings.Repeat("s", 64))},

		// /lock
		{"/lock", "", ok(Command{Name: "lock", List: true})},
		{"/lock", "  ", ok(Command{Name: "lock", List: true})},
		{"/lock", "help", ok(Command{Name: "lock", Help: true})},
		{"/lock", "prod", ok(lock("prod", ""))},
		{"/lock", "prod  upgrading “db” —  back at 5\n",
			ok(lock("prod", `upgrading "db" --  back at 5`))},
		{"/lock", "prod\u00a0maintenance", ok(lock("prod", "maintenance"))},
		{"/lock", "pr*d", notStack("pr*d")},

		// /unlock
		{"/unlock", "prod", ok(Command{Name: "unlock", Stack: "prod"})},
		{"/unlock", " prod \n", ok(Command{Name: "unlock", Stack: "prod"})},
		{"/unlock", "help", ok(Command{Name: "unlock", Help: true})},
		{"/unlock", "", fail("which stack? /unlock prod")},
		{"/unlock", "prod staging", fail(`/unlock takes only a stack name, not "staging": /unlock prod`)},
		{"/unlock", "—force", notStack("--force")},

		// others
		{"/deploy", "prod", fail("I don't know the command /deploy.")},
		{"", "prod ls", fail("I don't know the command .")},
	}
	for _, tt := range tests {
		got := parse(t, tt.name, tt.text)
		if diff := cmp.Diff(got, tt.want); diff != "" {
			t.Errorf("Parse(%q, %q) mismatch (-got +want):\n%s", tt.name, tt.text, diff)
		}
	}
}

// TestParseMasked checks that errors quote the text with its secrets
// masked, though quoting and escaping would hide a secret from the masker,
// and that a command that parses holds the text as typed.
func TestParseMasked(t *testing.T) {
	const secret = `pa&ss"wd-1<23`
	m := mask.New(secret, "--secret-option", "key—abc123")
	fail := func(sentence string) result { return result{Err: sentence} }

	tests := []struct {
		name, text string
		want       result
	}{
		{"/unlock", "dev " + secret, fail("I could not read that command.")},
		{"/unlock", "dev pa&ss“wd-1<23", fail("I could not read that command.")},
		{"/unlock", "dev key—abc123", fail("I could not read that command.")},
		{"/task", "dev --" + secret + " x", fail("I could not read that command.")},
		{"/task", secret + " ls", fail("I could not read that command.")},
		{"/lock", "dev" + secret, fail("I could not read that command.")},
		{"/task", "dev --secret-option", fail("I could not read that command.")},
		{"/unlock", "dev extra", fail(`/unlock takes only a stack name, not "extra": /unlock dev`)},
		{"/task", "dev echo " + secret, result{Cmd: Command{Name: "task", Stack: "dev", Text: "echo " + secret}}},
	}
	for _, tt := range tests {
		got := parseMasked(t, m, tt.name, tt.text)
		if diff := cmp.Diff(got, tt.want); diff != "" {
			t.Errorf("ParseMasked(%q, %q) mismatch (-got +want):\n%s", tt.name, tt.text, diff)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain 'ascii' \"text\" -- -x", "plain 'ascii' \"text\" -- -x"},
		{"‘single’ ‚low‛", "'single' 'low'"},
		{"“double” „low‟", `"double" "low"`},
		{"a—b–c", "a--b--c"},
		{"a\u00a0b\u2007c\u202fd", "a b c d"},
		{"\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a", "           "},
		{"zero\u200bwidth", "zero\u200bwidth"},
		{"ideographic\u3000space", "ideographic\u3000space"},
		{"‐hyphen ‑nb −minus", "‐hyphen ‑nb −minus"},
		{"tab\tnew\nline", "tab\tnew\nline"},
		{"ünïcödé «guillemets» 日本", "ünïcödé «guillemets» 日本"},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(Normalize(tt.in), tt.want); diff != "" {
			t.Errorf("Normalize(%q) mismatch (-got +want):\n%s", tt.in, diff)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, name := range []string{"task", "/task", "lock", "/lock", "unlock", "/unlock"} {
		u := Usage(name)
		if !strings.HasPrefix(u, "Usage: "+"/"+strings.TrimPrefix(name, "/")) {
			t.Errorf("Usage(%q) = %q, want it to start with the synopsis", name, u)
		}
	}

	all := Usage("/deploy")
	for _, name := range []string{"task", "lock", "unlock"} {
		if !strings.Contains(all, Usage(name)) {
			t.Errorf("Usage(%q) lacks the usage of %s:\n%s", "/deploy", name, all)
		}
	}
}

// Messages are Slack mrkdwn: the usage's <…> and whatever the user typed
// come escaped, so that Slack shows them instead of reading them as markup.
func TestMessagesEscaped(t *testing.T) {
	if u := Usage("task"); !strings.Contains(u, "/task &lt;stack&gt;") || strings.Contains(u, "<") {
		t.Errorf("Usage(task) = %q, want its <…> escaped", u)
	}
	_, err := Parse("/unlock", "dev <!channel> now")
	var uerr *taskbot.Error
	if !errors.As(err, &uerr) || !strings.Contains(uerr.Message, "&lt;!channel&gt;") || strings.Contains(uerr.Message, "<!channel>") {
		t.Errorf("Parse(/unlock, with <!channel>) error = %v, want the typed text escaped", err)
	}
}
