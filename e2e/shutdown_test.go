package e2e

import (
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/taskbot/taskbot/internal/dockertest"
	"github.com/taskbot/taskbot/runner"
)

// TestShutdownDrains stops serve while tasks run: a task that ends within
// the drain timeout finishes; one that does not is cancelled, and either way
// the stack is released and no container is left behind.
func TestShutdownDrains(t *testing.T) {
	for _, tt := range []struct {
		note, command, drain, want string
	}{
		{"finishes within the drain timeout", "sleep 1; echo drained", "20s", "finished (exit code 0)"},
		{"cancelled after the drain timeout", "sleep 60; echo never", "1s", "cancelled before it finished"},
	} {
		t.Run(tt.note, func(t *testing.T) {
			b := newBot(t)
			stop := b.startReplica(t, "--drain-timeout", tt.drain)
			b.slash(t, alice, "/task", "dev --skip-init "+tt.command)
			b.wait(t, "the task to run", func() bool {
				m, ok := b.taskMessage(tt.command)
				return ok && strings.Contains(m.Plain(), "running")
			})

			if err := stop(); err != nil {
				t.Fatalf("serve returned %v on shutdown", err)
			}
			m, _ := b.taskMessage(tt.command)
			if !strings.Contains(m.Plain(), tt.want) {
				t.Errorf("after shutdown the task shows %q, want %q", m.Plain(), tt.want)
			}
			locks, err := b.store.Locks(t.Context())
			if err != nil || len(locks) != 0 {
				t.Errorf("locks after shutdown = %v, %v; want none", locks, err)
			}
			b.assertNoContainer(t, taskID(t, m))
		})
	}
}

// assertNoContainer checks that the container of task id is gone. Task IDs
// restart with every test's Redis, and other test runs may share the
// engine, so the container is looked for by this deployment's label too.
func (b *bot) assertNoContainer(t *testing.T, id string) {
	t.Helper()
	owner, err := b.store.DeploymentID(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	filters := make(client.Filters).Add("label", runner.LabelTask+"="+id, runner.LabelOwner+"="+owner)
	res, err := dockertest.Client(t).ContainerList(t.Context(), client.ContainerListOptions{All: true, Filters: filters})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != 0 {
		t.Errorf("the container of task %s was left behind", id)
	}
}
