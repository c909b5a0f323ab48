package config_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/config"
)

// getenv returns a lookup over vars, standing in for the process
// environment.
func getenv(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

// writeFile writes content to name under dir, creating directories, and
// returns its path.
func writeFile(tb testing.TB, dir, name, content string) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// problems returns the problems of a *config.ValidationError, failing the
// test for any other error.
func problems(tb testing.TB, err error) []string {
	tb.Helper()
	var v *config.ValidationError
	if !errors.As(err, &v) {
		tb.Fatalf("error %v is not a *config.ValidationError", err)
	}
	return v.Problems
}

func TestParseFull(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "secrets/db", "hunter2\n")
	writeFile(t, dir, "policies/task.rego", "package taskbot.task\n")
	data := `
stacks:
  prod:
    image: hashicorp/terraform:1.9
    init: terraform init -input=false
    workdir: /workspace
    writers: [U0123ABCD, S0456EFGH, W0789]
    labels: {env: production, tier: 1}
    env: {TF_IN_AUTOMATION: 1, TF_LOG: ""}
    secrets:
      AWS_SECRET_ACCESS_KEY: {env: PROD_AWS_SECRET}
      DB_PASSWORD: {file: secrets/db}
    timeout: 1h30m
  dev.eu-1:
    image: busybox
    writers: [U0DEMO]
policies: ./policies
approval: {emoji: ":shipit:"}
prefix: "bot:"
`
	got, err := config.Parse([]byte(data), dir, getenv(map[string]string{"PROD_AWS_SECRET": "s3cr3t"}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}

	want := &config.Config{
		Stacks: map[string]*taskbot.Stack{
			"prod": {
				Name:    "prod",
				Image:   "hashicorp/terraform:1.9",
				Init:    "terraform init -input=false",
				Workdir: "/workspace",
				Writers: []string{"U0123ABCD", "S0456EFGH", "W0789"},
				Labels:  map[string]string{"env": "production", "tier": "1"},
				Env:     map[string]string{"TF_IN_AUTOMATION": "1", "TF_LOG": ""},
				Secrets: map[string]taskbot.Secret{
					"AWS_SECRET_ACCESS_KEY": "s3cr3t",
					"DB_PASSWORD":           "hunter2",
				},
				Timeout: 90 * time.Minute,
			},
			"dev.eu-1": {
				Name:    "dev.eu-1",
				Image:   "busybox",
				Writers: []string{"U0DEMO"},
				Timeout: config.DefaultTimeout,
			},
		},
		Policies: filepath.Join(dir, "policies"),
		Approval: config.Approval{Emoji: "shipit"},
		Prefix:   "bot:",
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Parse mismatch (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(got.StackNames(), []string{"dev.eu-1", "prod"}); diff != "" {
		t.Errorf("StackNames mismatch (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(got.Secrets(), []taskbot.Secret{"s3cr3t", "hunter2"}); diff != "" {
		t.Errorf("Secrets mismatch (-got +want):\n%s", diff)
	}
}

func TestParseDefaults(t *testing.T) {
	data := "stacks:\n  dev:\n    image: busybox\n    writers: [U0DEMO]\n"
	got, err := config.Parse([]byte(data), t.TempDir(), getenv(nil))
	if err != nil {
		t.Fatalf("Parse(%q): %v", data, err)
	}

	want := &config.Config{
		Stacks: map[string]*taskbot.Stack{
			"dev": {Name: "dev", Image: "busybox", Writers: []string{"U0DEMO"}, Timeout: 30 * time.Minute},
		},
		Approval: config.Approval{Emoji: "white_check_mark"},
		Prefix:   "taskbot:",
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Parse(%q) mismatch (-got +want):\n%s", data, diff)
	}
	if got.Secrets() != nil {
		t.Errorf("Secrets() = %v, want none", got.Secrets())
	}
}

// TestParseMergeKeys checks that stacks can share settings through YAML
// anchors, merge keys and top-level extension fields, and that a stack's own
// keys win over merged ones.
func TestParseMergeKeys(t *testing.T) {
	data := `
x-defaults: &defaults
  image: busybox
  writers: [U0DEMO]
  timeout: 90s
x-labels: &eu {region: eu}
x-eu: &eudefaults {<<: *defaults, labels: *eu}
stacks:
  a:
    <<: *defaults
  b:
    <<: [*defaults, {labels: *eu}]
    timeout: 1h
  c: {<<: *eudefaults}
<<: {x-more: ignored too}
---
`
	got, err := config.Parse([]byte(data), t.TempDir(), getenv(nil))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}

	want := map[string]*taskbot.Stack{
		"a": {Name: "a", Image: "busybox", Writers: []string{"U0DEMO"}, Timeout: 90 * time.Second},
		"b": {Name: "b", Image: "busybox", Writers: []string{"U0DEMO"}, Timeout: time.Hour,
			Labels: map[string]string{"region": "eu"}},
		"c": {Name: "c", Image: "busybox", Writers: []string{"U0DEMO"}, Timeout: 90 * time.Second,
			Labels: map[string]string{"region": "eu"}},
	}
	if diff := cmp.Diff(got.Stacks, want); diff != "" {
		t.Errorf("Parse stacks mismatch (-got +want):\n%s", diff)
	}
}

// TestParseMergeBomb checks that mappings merged many times over, each
// level twice the one below, are walked once each rather than 2^levels
// times.
func TestParseMergeBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("x-0: &l0 {image: busybox, writers: [U0DEMO]}\n")
	const levels = 64
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "x-%d: &l%d {<<: [*l%d, *l%d]}\n", i, i, i-1, i-1)
	}
	fmt.Fprintf(&b, "stacks: {dev: {<<: *l%d}}\n", levels)

	got, err := config.Parse([]byte(b.String()), t.TempDir(), getenv(nil))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if st := got.Stacks["dev"]; st == nil || st.Image != "busybox" {
		t.Errorf("stack dev = %+v, want the merged image", st)
	}
}

// stack is a valid stack for problem snippets to append keys to.
const stack = "stacks:\n  dev:\n    image: busybox\n    writers: [U0DEMO]\n"

func TestParseProblems(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "empty", "\n")
	writeFile(t, dir, "policies.rego", "package taskbot.task\n")
	env := getenv(map[string]string{"SET": "set-value", "SHORT": "12345", "SPACES": " \t   \t  "})

	tests := []struct {
		note string
		data string
		want []string
	}{
		{
			note: "empty file",
			data: "",
			want: []string{"stacks: at least one stack is required"},
		},
		{
			note: "no stacks",
			data: "stacks: {}\n",
			want: []string{"stacks (line 1): at least one stack is required"},
		},
		{
			note: "not a mapping",
			data: "- a\n- b\n",
			want: []string{"config (line 1): must be a mapping"},
		},
		{
			note: "syntax error",
			data: "stacks:\n  dev: [\n",
			want: []string{"yaml: line 2: did not find expected node content"},
		},
		{
			note: "unknown top-level key",
			data: stack + "policy: ./policies\n",
			want: []string{"policy (line 5): unknown key"},
		},
		{
			note: "missing required keys",
			data: "stacks:\n  prod:\n    imagee: busybox\n",
			want: []string{
				"stacks.prod.imagee (line 3): unknown key",
				"stacks.prod.image: required",
				"stacks.prod.writers: required",
			},
		},
		{
			note: "null stack",
			data: "stacks:\n  prod:\n",
			want: []string{"stacks.prod.image: required", "stacks.prod.writers: required"},
		},
		{
			note: "empty image",
			data: "stacks:\n  prod:\n    image: ''\n    writers: [U0DEMO]\n",
			want: []string{"stacks.prod.image (line 3): must not be empty"},
		},
		{
			note: "bad writers",
			data: "stacks:\n  prod:\n    image: busybox\n    writers: [U0DEMO, bob, u0lower, {id: U1}]\n",
			want: []string{
				`stacks.prod.writers[1] (line 4): "bob" is not a Slack user or user-group ID (U…, W… or S…)`,
				`stacks.prod.writers[2] (line 4): "u0lower" is not a Slack user or user-group ID (U…, W… or S…)`,
				"stacks.prod.writers[3] (line 4): must be a string",
			},
		},
		{
			note: "empty writers",
			data: "stacks:\n  prod:\n    image: busybox\n    writers: []\n",
			want: []string{"stacks.prod.writers (line 4): at least one writer is required"},
		},
		{
			note: "writers not a list",
			data: "stacks:\n  prod:\n    image: busybox\n    writers: U0DEMO\n",
			want: []string{"stacks.prod.writers (line 4): must be a list of Slack user and user-group IDs"},
		},
		{
			note: "reserved and invalid names",
			data: "stacks:\n  help: {image: a, writers: [U0DEMO]}\n  Lock: {image: a, writers: [U0DEMO]}\n" +
				"  Prod Env: {image: a, writers: [U0DEMO]}\n  _infra: {image: a, writers: [U0DEMO]}\n",
			want: []string{
				`stacks.help (line 2): name collides with the subcommand "help"`,
				`stacks.Lock (line 3): name collides with the subcommand "lock"`,
				"stacks.Prod Env (line 4): invalid stack name (use up to 63 letters, digits, '.', '_' and '-', starting with a letter or digit)",
				"stacks._infra (line 5): invalid stack name (use up to 63 letters, digits, '.', '_' and '-', starting with a letter or digit)",
			},
		},
		{
			note: "stacks differing only in case",
			data: stack + "  Dev:\n    image: busybox\n    writers: [U0DEMO]\n",
			want: []string{`stacks.Dev (line 5): differs from stack "dev" only in case; ` +
				"people would mistake one for the other"},
		},
		{
			note: "taskbot's own variables",
			data: stack + "    env: {TASKBOT_COMMAND: x, taskbot_init: y}\n    secrets: {TASKBOT_INIT: {env: SET}}\n",
			want: []string{
				"stacks.dev.env.TASKBOT_COMMAND (line 5): names starting with TASKBOT_ are taskbot's own",
				"stacks.dev.secrets.TASKBOT_INIT (line 6): names starting with TASKBOT_ are taskbot's own",
			},
		},
		{
			note: "two documents",
			data: stack + "---\nstacks: {x: {image: a}}\n",
			want: []string{"the file must hold one YAML document, not several"},
		},
		{
			note: "merging a scalar",
			data: stack + "    <<: 5\n",
			want: []string{"stacks.dev.<< (line 5): must merge a mapping"},
		},
		{
			note: "duplicate stack",
			data: stack + "  dev:\n    image: other\n",
			want: []string{"stacks.dev (line 5): duplicate key"},
		},
		{
			note: "bad timeout, workdir, labels and env",
			data: stack + "    timeout: 5x\n    workdir: workspace\n    labels: [a]\n" +
				"    env: {1BAD: x, GOOD: [x]}\n",
			want: []string{
				`stacks.dev.timeout (line 5): invalid duration "5x"`,
				`stacks.dev.workdir (line 6): "workspace" is not an absolute path`,
				"stacks.dev.labels (line 7): must be a mapping",
				"stacks.dev.env.1BAD (line 8): invalid environment variable name",
				"stacks.dev.env.GOOD (line 8): must be a string",
			},
		},
		{
			note: "non-positive timeout",
			data: stack + "    timeout: 0s\n",
			want: []string{"stacks.dev.timeout (line 5): must be positive"},
		},
		{
			note: "secrets",
			data: stack + "    secrets:\n" +
				"      UNSET: {env: PROD_AWS_SECRET}\n" +
				"      MISSING: {file: /nonexistent/secret}\n" +
				"      EMPTY: {file: empty}\n" +
				"      BOTH: {env: SET, file: empty}\n" +
				"      NEITHER: {}\n" +
				"      TYPO: {envv: SET}\n" +
				"      NULL:\n" +
				"      BAD-NAME: {env: SET}\n" +
				"      BAD_SOURCE: {env: 'A B'}\n" +
				"      BLANK: {env: ''}\n",
			want: []string{
				"stacks.dev.secrets.UNSET (line 6): environment variable PROD_AWS_SECRET is not set",
				"stacks.dev.secrets.MISSING (line 7): file /nonexistent/secret: no such file",
				"stacks.dev.secrets.EMPTY (line 8): file " + filepath.Join(dir, "empty") + " is empty",
				"stacks.dev.secrets.BOTH (line 9): set exactly one of env or file",
				"stacks.dev.secrets.NEITHER (line 10): set exactly one of env or file",
				"stacks.dev.secrets.TYPO.envv (line 11): unknown key",
				"stacks.dev.secrets.TYPO (line 11): set exactly one of env or file",
				"stacks.dev.secrets.NULL (line 12): set exactly one of env or file",
				"stacks.dev.secrets.BAD-NAME (line 13): invalid environment variable name",
				`stacks.dev.secrets.BAD_SOURCE (line 14): "A B" is not an environment variable name`,
				"stacks.dev.secrets.BLANK.env (line 15): must not be empty",
			},
		},
		{
			note: "secret also in env",
			data: stack + "    env: {TOKEN: plain}\n    secrets: {TOKEN: {env: SET}}\n",
			want: []string{"stacks.dev.secrets.TOKEN: also set in env; keep one"},
		},
		{
			note: "secret too short",
			data: stack + "    secrets: {TOKEN: {env: SHORT}}\n",
			want: []string{"stacks.dev.secrets.TOKEN (line 5): the secret is shorter than 6 characters, " +
				"white space aside: masking it would garble output, and it is too weak to be a secret"},
		},
		{
			note: "secret of spaces",
			data: stack + "    secrets: {TOKEN: {env: SPACES}}\n",
			want: []string{"stacks.dev.secrets.TOKEN (line 5): the secret is shorter than 6 characters, " +
				"white space aside: masking it would garble output, and it is too weak to be a secret"},
		},
		{
			note: "bad policies, approval and prefix",
			data: stack + "policies: ./missing\napproval: {emoji: '::', reaction: x}\nprefix: ''\n",
			want: []string{
				"policies (line 5): directory " + filepath.Join(dir, "missing") + " does not exist",
				`approval.emoji (line 6): "::" is not an emoji name`,
				"approval.reaction (line 6): unknown key",
				"prefix (line 7): must not be empty",
			},
		},
		{
			note: "policies is a file",
			data: stack + "policies: policies.rego\n",
			want: []string{
				"policies (line 5): " + filepath.Join(dir, "policies.rego") + " is not a directory",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.note, func(t *testing.T) {
			c, err := config.Parse([]byte(tt.data), dir, env)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", tt.data, c)
			}
			if diff := cmp.Diff(problems(t, err), tt.want); diff != "" {
				t.Errorf("Parse(%q) problems mismatch (-got +want):\n%s", tt.data, diff)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	data := `stacks:
  prod:
    imagee: terraform
    writers: [bob]
    timeout: 5x
  help:
    image: busybox
    writers: [U0DEMO]
    secrets:
      X: {env: PROD_AWS_SECRET}
colour: blue
`
	_, err := config.Parse([]byte(data), t.TempDir(), getenv(nil))

	want := []string{
		"stacks.prod.imagee (line 3): unknown key",
		`stacks.prod.writers[0] (line 4): "bob" is not a Slack user or user-group ID (U…, W… or S…)`,
		`stacks.prod.timeout (line 5): invalid duration "5x"`,
		"stacks.prod.image: required",
		`stacks.help (line 6): name collides with the subcommand "help"`,
		"stacks.help.secrets.X (line 10): environment variable PROD_AWS_SECRET is not set",
		"colour (line 11): unknown key",
	}
	if diff := cmp.Diff(problems(t, err), want); diff != "" {
		t.Errorf("Parse problems mismatch (-got +want):\n%s", diff)
	}
	if got, want := err.Error(), strings.Join(want, "\n"); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestSecretsStayOutOfErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "token", "file-secret-value\r\n")
	data := stack + "    secrets:\n" +
		"      A: {env: TOKEN}\n" +
		"      B: {file: token}\n" +
		"      C: {env: TOKEN, file: token}\n" +
		"    timeout: never\n"
	vars := map[string]string{"TOKEN": "env-secret-value"}

	_, err := config.Parse([]byte(data), dir, getenv(vars))
	if err == nil {
		t.Fatal("Parse succeeded, want an error")
	}
	for _, secret := range []string{"env-secret-value", "file-secret-value"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Parse error %q reveals a secret", err)
		}
	}

	// Without the bad keys the same secrets resolve, CRLF trimmed.
	data = stack + "    secrets:\n      A: {env: TOKEN}\n      B: {file: token}\n"
	c, err := config.Parse([]byte(data), dir, getenv(vars))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := map[string]taskbot.Secret{"A": "env-secret-value", "B": "file-secret-value"}
	if diff := cmp.Diff(c.Stacks["dev"].Secrets, want); diff != "" {
		t.Errorf("Secrets mismatch (-got +want):\n%s", diff)
	}
}

func TestSecretFileTrimsOneNewline(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "multi", "line one\nline two\n\n")
	data := stack + "    secrets: {KEY: {file: multi}}\n"

	c, err := config.Parse([]byte(data), dir, getenv(nil))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := c.Stacks["dev"].Secrets["KEY"].Reveal(), "line one\nline two\n"; got != want {
		t.Errorf("secret = %q, want %q", got, want)
	}
}

func TestSecretsAcrossStacks(t *testing.T) {
	data := `stacks:
  b:
    image: busybox
    writers: [U0DEMO]
    secrets: {Z: {env: ONE}, A: {env: TWO}}
  a:
    image: busybox
    writers: [U0DEMO]
    secrets: {SAME: {env: ONE}}
`
	vars := map[string]string{"ONE": "secret-1", "TWO": "secret-2"}
	c, err := config.Parse([]byte(data), t.TempDir(), getenv(vars))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if diff := cmp.Diff(c.Secrets(), []taskbot.Secret{"secret-1", "secret-2"}); diff != "" {
		t.Errorf("Secrets mismatch (-got +want):\n%s", diff)
	}
}

func TestLoadResolvesAgainstTheFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "etc/secrets/db", "db-password\n")
	writeFile(t, dir, "etc/rego/task.rego", "package taskbot.task\n")
	path := writeFile(t, dir, "etc/taskbot.yaml",
		stack+"    secrets: {DB: {file: secrets/db}}\npolicies: rego\n")

	// A relative path to the file, from elsewhere, must not matter.
	t.Chdir(dir)
	c, err := config.Load(filepath.Join("etc", "taskbot.yaml"), getenv(nil))
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	if got, want := c.Policies, filepath.Join(dir, "etc", "rego"); got != want {
		t.Errorf("Policies = %q, want %q", got, want)
	}
	if got, want := c.Stacks["dev"].Secrets["DB"], taskbot.Secret("db-password"); got != want {
		t.Errorf("secret DB = %q, want %q", got.Reveal(), want.Reveal())
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := config.Load(missing, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(%q): %v, want %v", missing, err, fs.ErrNotExist)
	}

	invalid := writeFile(t, dir, "invalid.yaml", "stacks: {}\n")
	_, err := config.Load(invalid, nil)
	want := []string{"stacks (line 1): at least one stack is required"}
	if diff := cmp.Diff(problems(t, err), want); diff != "" {
		t.Errorf("Load(%q) problems mismatch (-got +want):\n%s", invalid, diff)
	}
	if !strings.HasPrefix(err.Error(), "load config "+invalid+":\n") {
		t.Errorf("Load(%q) = %q, want it to name the file", invalid, err)
	}
}

func TestLoadExample(t *testing.T) {
	const path = "../examples/taskbot.yaml"
	c, err := config.Load(path, getenv(map[string]string{"TASKBOT_DEMO_TOKEN": "demo-token"}))
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}

	policies, err := filepath.Abs("../examples/policies")
	if err != nil {
		t.Fatal(err)
	}
	want := &config.Config{
		Stacks: map[string]*taskbot.Stack{
			"dev": {
				Name:    "dev",
				Image:   "taskbot-example/busybox:latest",
				Init:    "echo initialising; touch .initialised",
				Workdir: "/tmp",
				Writers: []string{"U0DEMO", "U0OTHER"},
				Labels:  map[string]string{"env": "dev"},
				Secrets: map[string]taskbot.Secret{"DEMO_TOKEN": "demo-token"},
				Timeout: 5 * time.Minute,
			},
			"prod": {
				Name:    "prod",
				Image:   "taskbot-example/busybox:latest",
				Writers: []string{"U0DEMO", "U0OTHER"},
				Labels:  map[string]string{"env": "production"},
				Timeout: config.DefaultTimeout,
			},
		},
		Policies: policies,
		Approval: config.Approval{Emoji: "white_check_mark"},
		Prefix:   "taskbot:",
	}
	if diff := cmp.Diff(c, want); diff != "" {
		t.Errorf("Load(%q) mismatch (-got +want):\n%s", path, diff)
	}
}
