package e2e

import (
	"strings"
	"testing"

	"github.com/taskbot/taskbot/cli"
	"github.com/taskbot/taskbot/internal/dockertest"
	"github.com/taskbot/taskbot/internal/logtest"
)

// TestShell drives taskbot shell through its standard input, with the
// embedded store, and reads what it printed.
func TestShell(t *testing.T) {
	image := dockertest.BusyboxImage(t)
	cfg := writeConfig(t, t.TempDir(), image)
	input := strings.Join([]string{
		"/task dev echo hello-shell $API_TOKEN",
		"/task nope echo hi",
		"/lock locked shell test",
		"/user " + bob,
		"/task locked echo should-not-run",
		"/task prod echo terraform taint x",
		"/react 4 white_check_mark",
		"/user " + alice,
		"/react 4 :white_check_mark::skin-tone-3:",
	}, "\n")

	out, logs := &logtest.Buffer{}, &logtest.Buffer{}
	err := cli.Run(t.Context(), []string{"shell", "--config", cfg, "--user", alice},
		cli.IO{In: strings.NewReader(input), Out: out, Err: logs, Getenv: func(k string) string {
			return map[string]string{"E2E_SECRET": envSecret}[k]
		}})
	if err != nil {
		t.Fatalf("taskbot shell: %v\nlog:\n%s", err, logs.String())
	}

	got := out.String()
	for _, want := range []string{
		"[task 1] │ initialising",
		"[task 1] │ hello-shell ***",
		"[task 1] echo hello-shell $API_TOKEN on dev by @" + alice + ": finished (exit code 0)",
		`There is no stack "nope"`,
		"@" + alice + " locked stack *locked*: shell test",
		"you are now @" + bob,
		"Stack *locked* is locked by @" + alice,
		"[task 4] needs approval:",
		"(only @" + bob + " sees this) Your :white_check_mark: on task 4 did not count as an approval",
		"[task 4] │ terraform taint x",
		"approved by @" + alice,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("shell output lacks %q; got:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "approved by @"+alice); n != 1 {
		t.Errorf("shell printed the approval %d times, want once:\n%s", n, got)
	}
	if strings.Contains(got, "│ should-not-run") {
		t.Errorf("a task ran on a stack locked by someone else:\n%s", got)
	}
	if strings.Contains(got+logs.String(), envSecret) {
		t.Errorf("secret leaked in shell output or log")
	}
}
