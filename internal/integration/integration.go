// Package integration decides what a test does when a real dependency it
// needs (Redis, Docker) is missing: skip loudly on a developer's machine, fail
// under TASKBOT_REQUIRE_INTEGRATION=1, which CI sets.
package integration

import (
	"fmt"
	"os"
	"testing"
)

// RequireEnv is the environment variable that turns missing dependencies
// from skips into failures.
const RequireEnv = "TASKBOT_REQUIRE_INTEGRATION"

// Required reports whether missing dependencies must fail tests.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Unavailable stops the test because a dependency is missing: it fails under
// TASKBOT_REQUIRE_INTEGRATION=1 and skips with a loud reason otherwise.
func Unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	reason := fmt.Sprintf(format, args...)
	if Required() {
		tb.Fatalf("integration dependency missing (%s=1): %s", RequireEnv, reason)
	}
	tb.Skipf("SKIPPING INTEGRATION TEST: %s (set %s=1 to make this a failure)", reason, RequireEnv)
}
