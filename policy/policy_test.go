package policy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/taskbot/taskbot/policy"
)

const examples = "../examples/policies"

// writePolicies writes files (name → Rego source) into a new directory and
// returns it.
func writePolicies(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, src := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

func mustLoad(tb testing.TB, dir string) *policy.Engine {
	tb.Helper()
	e, err := policy.Load(tb.Context(), dir)
	if err != nil {
		tb.Fatalf("Load(%q): %v", dir, err)
	}
	return e
}

func input(stack string, labels map[string]string, command string) policy.Input {
	return policy.Input{
		Stack:   policy.StackInput{Name: stack, Labels: labels},
		Command: command,
		User:    policy.UserInput{ID: "U0DEMO", Groups: []string{"S0OPS"}},
		Channel: policy.ChannelInput{ID: "C0DEMO"},
	}
}

var (
	production = map[string]string{"env": "production"}
	dev        = map[string]string{"env": "dev"}
)

const (
	destroyReason = `Destroying anything on the production stack "prod" is not allowed; ask an operator.`
	stateRmReason = "terraform state rm needs approval: " +
		"Terraform forgets the resources, which keep running."
	taintReason = "terraform taint needs approval: " +
		"the next apply destroys and recreates the resource."
	importReason = "terraform import needs approval: " +
		"Terraform will manage, and may change, the resource."
)

func TestExamples(t *testing.T) {
	engine := mustLoad(t, examples)
	if engine.Empty() {
		t.Fatalf("Load(%q).Empty() = true, want false", examples)
	}

	tests := []struct {
		note    string
		in      policy.Input
		want    policy.Decision
		allowed bool
	}{
		{
			note:    "plan on production",
			in:      input("prod", production, "terraform plan"),
			allowed: true,
		},
		{
			note: "destroy on production",
			in:   input("prod", production, "terraform destroy"),
			want: policy.Decision{Deny: []string{destroyReason}},
		},
		{
			note: "apply -destroy on production",
			in:   input("prod", production, "terraform apply -destroy -auto-approve"),
			want: policy.Decision{Deny: []string{destroyReason}},
		},
		{
			note:    "destroy on dev",
			in:      input("dev", dev, "terraform destroy"),
			allowed: true,
		},
		{
			note:    "destroy inside a word on production",
			in:      input("prod", production, "terraform apply -target=module.destroyer"),
			allowed: true,
		},
		{
			note:    "state rm on dev",
			in:      input("dev", dev, "terraform state rm aws_instance.web"),
			want:    policy.Decision{RequireApproval: []string{stateRmReason}},
			allowed: true,
		},
		{
			note:    "taint without labels",
			in:      input("bare", nil, "terraform taint aws_instance.web"),
			want:    policy.Decision{RequireApproval: []string{taintReason}},
			allowed: true,
		},
		{
			note:    "import and taint in one command",
			in:      input("dev", dev, "terraform import a.b id && terraform taint a.b"),
			want:    policy.Decision{RequireApproval: []string{importReason, taintReason}},
			allowed: true,
		},
		{
			note:    "state list",
			in:      input("prod", production, "terraform state list"),
			allowed: true,
		},
		{
			note: "denied and held at once",
			in:   input("prod", production, "terraform taint x && terraform destroy"),
			want: policy.Decision{Deny: []string{destroyReason}, RequireApproval: []string{taintReason}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.note, func(t *testing.T) {
			got, err := engine.Evaluate(t.Context(), tt.in)
			if err != nil {
				t.Fatalf("Evaluate(%q): %v", tt.in.Command, err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("Evaluate(%q) mismatch (-got +want):\n%s", tt.in.Command, diff)
			}
			if got.Allowed() != tt.allowed {
				t.Errorf("Evaluate(%q).Allowed() = %v, want %v", tt.in.Command, got.Allowed(), tt.allowed)
			}
		})
	}
}

func TestExampleRegoTests(t *testing.T) {
	if err := policy.Test(t.Context(), examples); err != nil {
		t.Errorf("Test(%q): %v", examples, err)
	}
}

func TestTestReportsFailures(t *testing.T) {
	dir := writePolicies(t, map[string]string{
		"p.rego": "package taskbot.task\n\ndeny contains \"no\" if input.command == \"x\"\n",
		"p_test.rego": `package taskbot.task_test

import data.taskbot.task

test_passes if count(task.deny) == 1 with input as {"command": "x"}

test_fails if count(task.deny) == 1 with input as {"command": "y"}

test_errors if to_number("nan?") == 1
`,
	})

	err := policy.Test(t.Context(), dir)
	if !errors.Is(err, policy.ErrTestsFailed) {
		t.Fatalf("Test: %v, want %v", err, policy.ErrTestsFailed)
	}
	for _, want := range []string{"test_fails", "test_errors", "p_test.rego:7"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Test: %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "test_passes") {
		t.Errorf("Test: %q mentions a passing test", err)
	}
}

func TestTestWithoutTests(t *testing.T) {
	dir := writePolicies(t, map[string]string{"p.rego": "package taskbot.task\n"})
	if err := policy.Test(t.Context(), dir); !errors.Is(err, policy.ErrNoTests) {
		t.Errorf("Test: %v, want %v", err, policy.ErrNoTests)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		note  string
		files map[string]string
		want  []string // substrings of the error
	}{
		{
			note: "syntax error",
			files: map[string]string{
				"good.rego":   "package taskbot.task\n",
				"broken.rego": "package taskbot.task\n\ndeny contains \"x\" iff true\n",
			},
			want: []string{"broken.rego:3"},
		},
		{
			note: "Rego v0 syntax",
			files: map[string]string{
				"old.rego": "package taskbot.task\n\ndeny[\"x\"] {\n\ttrue\n}\n",
			},
			want: []string{"old.rego:3"},
		},
		{
			note: "unsafe variable",
			files: map[string]string{
				"unsafe.rego": "package taskbot.task\n\ndeny contains msg if {\n\tx == 1\n\tmsg := \"m\"\n}\n",
			},
			want: []string{"unsafe.rego:4", "var x is unsafe"},
		},
		{
			note:  "empty directory",
			files: map[string]string{},
			want:  []string{"no policy files", "remove the policies key"},
		},
		{
			note: "only tests and other files",
			files: map[string]string{
				"x_test.rego": "package taskbot.task_test\n\ntest_x if true\n",
				"README.md":   "policies go here\n",
			},
			want: []string{"no policy files"},
		},
		{
			note: "no taskbot.task package",
			files: map[string]string{
				"other.rego": "package taskbot.tasks\n\ndeny contains \"x\"\n",
			},
			want: []string{"taskbot.task"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.note, func(t *testing.T) {
			dir := writePolicies(t, tt.files)
			e, err := policy.Load(t.Context(), dir)
			if err == nil {
				t.Fatalf("Load = %v, want an error", e)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Load: %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestLoadMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	if _, err := policy.Load(t.Context(), dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(%q): %v, want %v", dir, err, os.ErrNotExist)
	}
}

func TestFailClosed(t *testing.T) {
	tests := []struct {
		note   string
		policy string
	}{
		{note: "deny is a string", policy: `deny := "no"`},
		{note: "deny is a number", policy: `deny := 5`},
		{note: "deny is an object", policy: `deny[x] := true if some x in ["a"]`},
		{note: "deny holds a number", policy: `deny contains 5 if input.command != ""`},
		{note: "deny holds an object", policy: `deny contains {"why": "x"} if true`},
		{note: "require_approval is a string", policy: `require_approval := "hold"`},
		{note: "deny is an array", policy: `deny := ["no"]`},
		{note: "empty deny array", policy: `deny := []`},
		{note: "require_approval is an array", policy: `require_approval := ["hold"]`},
		{
			note:   "evaluation too slow",
			policy: "deny contains \"slow\" if {\n\tn := numbers.range(1, 2000)\n\tcount({[a, b, c] | some a in n; some b in n; some c in n}) == 0\n}",
		},
		{note: "require_approval holds a boolean", policy: `require_approval contains true if true`},
		{
			note: "conflicting values for a complete rule",
			policy: `deny := {"a"} if input.command != ""
deny := {"b"} if input.user.id != ""`,
		},
		{
			note:   "builtin error",
			policy: `deny contains "big" if to_number(input.command) > 5`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.note, func(t *testing.T) {
			src := "package taskbot.task\n\n" + tt.policy + "\n"
			dir := writePolicies(t, map[string]string{"p.rego": src})
			engine := mustLoad(t, dir)
			policy.SetTimeout(engine, time.Second)

			got, err := engine.Evaluate(t.Context(), input("dev", dev, "terraform plan"))
			if !errors.Is(err, policy.ErrEvaluation) {
				t.Errorf("Evaluate: %v, want %v", err, policy.ErrEvaluation)
			}
			want := policy.Decision{Deny: []string{policy.FailedReason}}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("Evaluate mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

// TestAllowsWithoutPolicies checks that no policies configured allows every
// task without approval.
func TestAllowsWithoutPolicies(t *testing.T) {
	engine := mustLoad(t, "")
	if !engine.Empty() {
		t.Errorf("Load(\"\").Empty() = false, want true")
	}
	got, err := engine.Evaluate(t.Context(), input("prod", production, "terraform destroy"))
	if err != nil || !got.Allowed() || len(got.RequireApproval) > 0 {
		t.Errorf("Evaluate = %+v, %v; want an allowing decision", got, err)
	}
}

func TestPackageWithoutRules(t *testing.T) {
	dir := writePolicies(t, map[string]string{
		"p.rego": "package taskbot.task\n\nhelper := true\n",
	})
	got, err := mustLoad(t, dir).Evaluate(t.Context(), input("dev", dev, "ls"))
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	if diff := cmp.Diff(got, policy.Decision{}); diff != "" {
		t.Errorf("Evaluate mismatch (-got +want):\n%s", diff)
	}
}

func TestInputDocument(t *testing.T) {
	// The policy hands the input back as JSON, so the test sees exactly
	// what policy authors see.
	dir := writePolicies(t, map[string]string{
		"p.rego": "package taskbot.task\n\ndeny contains json.marshal(input)\n",
	})
	engine := mustLoad(t, dir)

	tests := []struct {
		note string
		in   policy.Input
		want string
	}{
		{
			note: "nil labels and groups",
			in: policy.Input{
				Stack:   policy.StackInput{Name: "dev"},
				Command: "ls",
				User:    policy.UserInput{ID: "U1"},
				Channel: policy.ChannelInput{ID: "C1"},
			},
			want: `{"channel":{"id":"C1"},"command":"ls","skip_init":false,` +
				`"stack":{"labels":{},"name":"dev"},"user":{"groups":[],"id":"U1"}}`,
		},
		{
			note: "everything set",
			in: policy.Input{
				Stack: policy.StackInput{
					Name:   "prod",
					Labels: map[string]string{"env": "production", "team": "a"},
				},
				Command:  "terraform plan",
				SkipInit: true,
				User:     policy.UserInput{ID: "U2", Groups: []string{"S1", "S2"}},
				Channel:  policy.ChannelInput{ID: "C2"},
			},
			want: `{"channel":{"id":"C2"},"command":"terraform plan","skip_init":true,` +
				`"stack":{"labels":{"env":"production","team":"a"},"name":"prod"},` +
				`"user":{"groups":["S1","S2"],"id":"U2"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.note, func(t *testing.T) {
			got, err := engine.Evaluate(t.Context(), tt.in)
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if diff := cmp.Diff(got.Deny, []string{tt.want}); diff != "" {
				t.Errorf("input mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestConcurrentEvaluate(t *testing.T) {
	engine := mustLoad(t, examples)
	in := input("prod", production, "terraform destroy")

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			got, err := engine.Evaluate(t.Context(), in)
			if err == nil && got.Allowed() {
				err = errors.New("destroy on production allowed")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)

	for err := range errs {
		if err != nil {
			t.Errorf("Evaluate: %v", err)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	engine := mustLoad(b, examples)
	in := input("prod", production, "terraform -chdir=infra state rm -dry-run aws_instance.web")
	ctx := context.Background()

	for b.Loop() {
		if _, err := engine.Evaluate(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}
