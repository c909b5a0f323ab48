package shell

import (
	"context"
	"errors"
	"io"
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

// TestLongLineSkipped checks that a line too long to read is answered and
// skipped, and the shell reads on.
func TestLongLineSkipped(t *testing.T) {
	out := &logtest.Buffer{}
	sh := New(NewChat(out, mask.New()), unreachedTasks{t}, "U0ALICE", logrus.New())

	in := "/task dev echo " + strings.Repeat("z", 2*maxLine) + "\n/user U0BOB\n"
	if err := sh.Run(t.Context(), strings.NewReader(in)); err != nil {
		t.Fatalf("Run: %v", err)
	}

	got := out.String()
	for _, want := range []string{"That line is longer than 64 KiB, so it was skipped", "you are now @U0BOB"} {
		if !strings.Contains(got, want) {
			t.Errorf("shell output lacks %q; got:\n%s", want, got)
		}
	}
}

// TestInterrupt checks that cancelling the shell's context ends Run while
// its input is still open, as Ctrl-C in a terminal does.
func TestInterrupt(t *testing.T) {
	out := &logtest.Buffer{}
	sh := New(NewChat(out, mask.New()), unreachedTasks{t}, "U0ALICE", logrus.New())
	in, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithCancel(t.Context())

	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx, in) }()
	if _, err := io.WriteString(w, "/user U0BOB\n"); err != nil {
		t.Fatal(err)
	}
	cancel()

	if err := <-done; !errors.Is(err, errInterrupted) {
		t.Errorf("Run after cancel = %v, want %v", err, errInterrupted)
	}
}
