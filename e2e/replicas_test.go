package e2e

import (
	"strings"
	"testing"

	"github.com/taskbot/taskbot"
)

// TestReplicas runs two replicas against one Redis. The stand-in hands
// envelopes to its connections in turn, so consecutive commands land on
// different replicas: locks, leases and approvals must hold across them.
func TestReplicas(t *testing.T) {
	b := newBot(t)
	b.startReplica(t)
	b.startReplica(t)

	// Two tasks on one stack at once, on two replicas: one runs, the other
	// is refused as busy. Which one wins is a race.
	b.slash(t, alice, "/task", "dev --skip-init sleep 1; echo alice-ran")
	b.slash(t, bob, "/task", "dev --skip-init sleep 1; echo bob-ran")
	b.wait(t, "one task to run and the other to be refused", func() bool {
		_, aliceRan := b.taskMessage("sleep 1; echo alice-ran")
		_, bobRan := b.taskMessage("sleep 1; echo bob-ran")
		return aliceRan != bobRan && (b.hasEphemeral(alice, "Stack *dev* is busy") ||
			b.hasEphemeral(bob, "Stack *dev* is busy"))
	})

	// A lock taken through one replica binds the other.
	b.slash(t, alice, "/lock", "prod release freeze")
	b.waitChannel(t, "locked stack *prod*")
	b.slash(t, bob, "/task", "prod echo during-freeze")
	b.ephemeral(t, bob, "Stack *prod* is locked by <@"+alice+">: release freeze")

	// A task posted by one replica is approved through the other, by a
	// writer who is one through a user group.
	const cmd = "echo terraform import x y"
	b.slash(t, alice, "/task", "team "+cmd)
	m := b.awaitingApproval(t, cmd)
	b.react(t, carol, m.TS) // a writer through the user group
	if m := b.waitTask(t, cmd); !strings.Contains(m.Plain(), "finished") {
		t.Errorf("task approved through the other replica = %q, want finished", m.Plain())
	}
	id := taskID(t, m)
	if n := countType(b.events(t, id), taskbot.EventStarted); n != 1 {
		t.Errorf("task %s started %d times, want once", id, n)
	}
}
