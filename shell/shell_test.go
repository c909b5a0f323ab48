package shell

import (
	"context"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/taskbot/taskbot/internal/logtest"
	"github.com/taskbot/taskbot/mask"
	"github.com/taskbot/taskbot/task"
)

// unreachedTasks fails the test for any command or reaction that reaches
// the task lifecycle.
type unreachedTasks struct{ tb testing.TB }

var _ Tasks = unreachedTasks{}

func (u unreachedTasks) Handle(_ context.Context, req task.Request) (task.Reply, error) {
	u.tb.Errorf("Handle(%+v) called for a command that does not parse", req)
	return task.Reply{}, nil
}

func (u unreachedTasks) React(_ context.Context, r task.Reaction) error {
	u.tb.Errorf("React(%+v) called", r)
	return nil
}

// TestUsageErrorsMasked checks that a command that does not parse and
// holds a secret is refused without quoting it: %q quoting would hide the
// secret from a masker applied to the printed line, and even masked, the
// quote would confirm a guessed secret.
func TestUsageErrorsMasked(t *testing.T) {
	const secret = `pa&ss"wd-1<23`
	out := &logtest.Buffer{}
	lg := logrus.New()
	lg.SetOutput(out)
	sh := New(NewChat(out, mask.New(secret)), unreachedTasks{t}, "U0ALICE", lg)

	in := "/unlock dev " + secret + "\n/lock " + secret + " reason\n"
	if err := sh.Run(t.Context(), strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}

	got := out.String()
	if n := strings.Count(got, "I could not read that command."); n != 2 {
		t.Errorf("shell output has %d refusals, want 2; got:\n%s", n, got)
	}
	if strings.Contains(got, "wd-1") {
		t.Errorf("shell output shows part of the secret:\n%s", got)
	}
}
