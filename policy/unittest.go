package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// ErrTestsFailed is wrapped by the error Test returns when a Rego test fails.
var ErrTestsFailed = errors.New("policy tests failed")

// ErrNoTests is returned by Test when the directory holds no Rego tests, so
// that a misplaced test file cannot pass silently.
var ErrNoTests = errors.New("no policy tests found")

// Test runs the Rego unit tests (rules named test_*, usually in *_test.rego
// files) of the Rego v1 files under dir, with builtin errors raised as the
// engine raises them. Its error lists every test that failed.
func Test(ctx context.Context, dir string) error {
	modules, store, err := tester.LoadWithRegoVersion([]string{dir}, onlyRego, ast.RegoV1)
	if err != nil {
		return fmt.Errorf("load policy tests from %s: %w", dir, err)
	}

	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return fmt.Errorf("open policy store: %w", err)
	}
	defer store.Abort(ctx, txn)

	results, err := tester.NewRunner().
		SetStore(store).
		SetModules(modules).
		SetDefaultRegoVersion(ast.RegoV1).
		RaiseBuiltinErrors(true).
		RunTests(ctx, txn)
	if err != nil {
		return fmt.Errorf("compile policy tests from %s: %w", dir, err)
	}

	// Drain the channel whatever happens: the runner's goroutines block
	// until every result is received.
	ran := 0
	var failures []string
	for r := range results {
		ran++
		if !r.Skip && !r.Pass() {
			failures = append(failures, describe(r))
		}
	}

	if ran == 0 {
		return fmt.Errorf("%w in %s", ErrNoTests, dir)
	}
	if len(failures) > 0 {
		slices.Sort(failures)
		return fmt.Errorf("%w:\n%s", ErrTestsFailed, strings.Join(failures, "\n"))
	}
	return nil
}

// onlyRego keeps the tester from loading data files that may sit next to
// the policies; the engine would not see them either.
func onlyRego(_ string, info fs.FileInfo, _ int) bool {
	return !info.IsDir() && !strings.HasSuffix(info.Name(), ".rego")
}

// describe names a failed test and where it is.
func describe(r *tester.Result) string {
	s := fmt.Sprintf("%s.%s (%s): FAIL", r.Package, r.Name, r.Location)
	if r.Error != nil {
		s = fmt.Sprintf("%s.%s (%s): ERROR: %v", r.Package, r.Name, r.Location, r.Error)
	}
	return s
}
