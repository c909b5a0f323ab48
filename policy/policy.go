// Package policy decides with OPA whether a task may run: policies written in
// Rego v1 under package taskbot.task may deny a task or hold it for approval.
//
// Policies are compiled once by Load and evaluated for every task. Anything
// that goes wrong while evaluating, including a decision of the wrong shape,
// denies the task: the engine fails closed.
package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Package is the Rego package whose rules decide on tasks.
const Package = "taskbot.task"

// The rules of Package that the engine reads. Both are sets of strings, the
// reasons shown to the requester.
const (
	RuleDeny            = "deny"
	RuleRequireApproval = "require_approval"
)

// FailedReason is the reason a task is denied for when the policies cannot
// be evaluated.
const FailedReason = "policy evaluation failed"

// ErrEvaluation is wrapped by every error Evaluate returns.
var ErrEvaluation = errors.New("evaluate policy")

// pkgRef names the package in queries.
const pkgRef = "data." + Package

// query reads the whole package, so that a package missing its rules reads
// as "no reasons" while a missing package reads as undefined, and the type of
// each of its rules: JSON, and so the result set, has no sets, and a rule
// that is an array rather than a set is not the contract.
const query = "doc := " + pkgRef + "; types := {k: type_name(v) | some k, v in doc}"

// DefaultTimeout bounds one evaluation. A policy that loops or builds huge
// comprehensions denies the task rather than holding a worker forever.
const DefaultTimeout = 5 * time.Second

// Input is the document policies see as input.
type Input struct {
	Stack    StackInput   `json:"stack"`
	Command  string       `json:"command"`
	SkipInit bool         `json:"skip_init"`
	User     UserInput    `json:"user"`
	Channel  ChannelInput `json:"channel"`
}

// StackInput describes the stack a task runs against. Nil Labels reach
// policies as an empty object.
type StackInput struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

// UserInput describes the requester. Nil Groups reach policies as an empty
// array.
type UserInput struct {
	ID     string   `json:"id"`
	Groups []string `json:"groups"`
}

// ChannelInput describes the channel a task was requested in.
type ChannelInput struct {
	ID string `json:"id"`
}

// Decision is what the policies decided on a task. Both lists are sorted
// and hold no duplicates.
type Decision struct {
	Deny            []string // why the task is refused
	RequireApproval []string // why the task must be approved before it runs
}

// Allowed reports whether no policy denied the task. An allowed task may
// still need approval.
func (d Decision) Allowed() bool { return len(d.Deny) == 0 }

// Engine evaluates a set of compiled policies. It is safe for concurrent use.
type Engine struct {
	query   *rego.PreparedEvalQuery // nil when no policies are configured
	timeout time.Duration
}

// Load compiles every *.rego file under dir, except *_test.rego files, as
// Rego v1. An empty dir (no policies configured) gives an engine that allows
// everything; a directory without policy files is an error, because a
// missing mount or a typo must not quietly allow every task. Builtin errors,
// such as a failed type conversion, are evaluation errors rather than
// undefined results, so that they deny.
func Load(ctx context.Context, dir string) (*Engine, error) {
	if dir == "" {
		return &Engine{}, nil
	}

	files, err := policyFiles(dir)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no policy files (*.rego besides *_test.rego) in %s; "+
			"remove the policies key to run without policies", dir)
	}

	modules, err := parseFiles(files)
	if err != nil {
		return nil, err
	}
	if !declaresPackage(modules) {
		return nil, fmt.Errorf("no file in %s declares package %s", dir, Package)
	}

	opts := []func(*rego.Rego){
		rego.Query(query),
		rego.SetRegoVersion(ast.RegoV1),
		rego.StrictBuiltinErrors(true),
	}
	for _, m := range modules {
		opts = append(opts, rego.ParsedModule(m))
	}
	prepared, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("compile policies from %s: %w", dir, err)
	}
	return &Engine{query: &prepared, timeout: DefaultTimeout}, nil
}

// Empty reports whether the engine holds no policies and so allows
// everything.
func (e *Engine) Empty() bool { return e.query == nil }

// Evaluate decides on a task. When the policies cannot be evaluated, or
// decide something of the wrong shape, it returns an error wrapping
// ErrEvaluation together with a decision that denies with FailedReason, so a
// caller that looks only at the decision still refuses the task.
func (e *Engine) Evaluate(ctx context.Context, in Input) (Decision, error) {
	if e.query == nil {
		return Decision{}, nil
	}

	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	rs, err := e.query.Eval(ctx, rego.EvalParsedInput(in.value()))
	if err != nil {
		return failed(err)
	}
	d, err := decide(rs)
	if err != nil {
		return failed(err)
	}
	return d, nil
}

func failed(err error) (Decision, error) {
	return Decision{Deny: []string{FailedReason}}, fmt.Errorf("%w: %w", ErrEvaluation, err)
}

// policyFiles returns the policy files under dir in lexical order.
func policyFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if !d.IsDir() && strings.HasSuffix(name, ".rego") && !strings.HasSuffix(name, "_test.rego") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list policies in %s: %w", dir, err)
	}
	return files, nil
}

// parseFiles parses every file and reports the syntax errors of all of them,
// each naming its file and line.
func parseFiles(files []string) ([]*ast.Module, error) {
	var modules []*ast.Module
	var errs []error
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, fmt.Errorf("read policy: %w", err))
			continue
		}
		m, err := ast.ParseModuleWithOpts(file, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			errs = append(errs, fmt.Errorf("parse policy: %w", err))
			continue
		}
		if m == nil {
			errs = append(errs, fmt.Errorf("parse policy %s: no package declaration", file))
			continue
		}
		modules = append(modules, m)
	}
	return modules, errors.Join(errs...)
}

// declaresPackage reports whether a module declares Package. Without one,
// every task would be allowed, which is more likely a typo than a wish.
func declaresPackage(modules []*ast.Module) bool {
	want := ast.MustParseRef(pkgRef)
	for _, m := range modules {
		if m.Package.Path.Equal(want) {
			return true
		}
	}
	return false
}

// decide reads the reasons out of the package document, insisting on the
// shape the contract promises.
func decide(rs rego.ResultSet) (Decision, error) {
	if len(rs) != 1 {
		return Decision{}, fmt.Errorf("package %s is undefined", Package)
	}
	doc, ok := rs[0].Bindings["doc"].(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("package %s is %T, want an object", Package, rs[0].Bindings["doc"])
	}
	types, _ := rs[0].Bindings["types"].(map[string]any)

	deny, err := reasons(doc, types, RuleDeny)
	if err != nil {
		return Decision{}, err
	}
	approval, err := reasons(doc, types, RuleRequireApproval)
	if err != nil {
		return Decision{}, err
	}
	return Decision{Deny: deny, RequireApproval: approval}, nil
}

// reasons returns the sorted, distinct strings of rule, or nil when the
// package does not define it. types holds the Rego type of each rule: sets
// and arrays both arrive as []any.
func reasons(doc, types map[string]any, rule string) ([]string, error) {
	v, ok := doc[rule]
	if !ok {
		return nil, nil
	}
	items, ok := v.([]any)
	if typ := types[rule]; !ok || typ != "set" {
		return nil, fmt.Errorf("rule %s.%s is a %v, want a set of strings", Package, rule, typ)
	}

	var out []string
	for _, item := range items {
		s, ok := item.(string)
		if !ok {
			return nil, fmt.Errorf("rule %s.%s holds a %T, want strings", Package, rule, item)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// value converts the input to Rego without a JSON round trip, turning nil
// labels and groups into an empty object and array.
func (in Input) value() ast.Value {
	labels := make([][2]*ast.Term, 0, len(in.Stack.Labels))
	for k, v := range in.Stack.Labels {
		labels = append(labels, ast.Item(ast.StringTerm(k), ast.StringTerm(v)))
	}
	groups := make([]*ast.Term, 0, len(in.User.Groups))
	for _, g := range in.User.Groups {
		groups = append(groups, ast.StringTerm(g))
	}

	return ast.NewObject(
		item("stack", ast.ObjectTerm(
			item("name", ast.StringTerm(in.Stack.Name)),
			item("labels", ast.ObjectTerm(labels...)),
		)),
		item("command", ast.StringTerm(in.Command)),
		item("skip_init", ast.BooleanTerm(in.SkipInit)),
		item("user", ast.ObjectTerm(
			item("id", ast.StringTerm(in.User.ID)),
			item("groups", ast.ArrayTerm(groups...)),
		)),
		item("channel", ast.ObjectTerm(item("id", ast.StringTerm(in.Channel.ID)))),
	)
}

func item(key string, value *ast.Term) [2]*ast.Term {
	return ast.Item(ast.StringTerm(key), value)
}
