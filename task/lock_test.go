package task_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/command"
	"github.com/taskbot/taskbot/task"
)

// TestLockLifecycle walks one stack through a manual lock, the tasks it
// lets through and keeps out, and its release.
func TestLockLifecycle(t *testing.T) {
	e := newEnv(t)
	steps := []struct {
		user, name, text string
		wantReply        task.Reply
		wantCode         taskbot.Code // "" for success
		wantMsg          string
	}{
		{
			user: bob, name: "lock", text: "prod db migration",
			wantReply: task.Reply{Public: true, Text: ":lock: <@UBOB> locked stack *prod*: db migration. " +
				"Only they can run tasks on it until `/unlock prod`."},
		},
		{user: bob, name: "task", text: "prod terraform plan"},
		{
			user: alice, name: "task", text: "prod terraform plan",
			wantCode: taskbot.EConflict,
			wantMsg: "Stack *prod* is locked by <@UBOB>: db migration. " +
				"Only they can run tasks on it until they `/unlock prod`.",
		},
		{
			user: alice, name: "lock", text: "prod mine now",
			wantCode: taskbot.EConflict,
			wantMsg: "Stack *prod* is locked by <@UBOB>: db migration. " +
				"Only they can run tasks on it until they `/unlock prod`.",
		},
		{
			user: alice, name: "unlock", text: "prod",
			wantCode: taskbot.EForbidden,
			wantMsg:  "Stack *prod* is locked by <@UBOB>; only they can unlock it.",
		},
		{user: carol, name: "task", text: "dev ls"}, // other stacks are free
		{
			user: bob, name: "unlock", text: "prod",
			wantReply: task.Reply{Public: true, Text: ":unlock: <@UBOB> unlocked stack *prod*."},
		},
		{
			user: bob, name: "unlock", text: "prod",
			wantCode: taskbot.EConflict,
			wantMsg:  "Stack *prod* is not locked.",
		},
		{user: alice, name: "task", text: "prod terraform plan"},
	}
	for i, s := range steps {
		reply, err := e.do(t, s.user, s.name, s.text)
		if s.wantCode == "" {
			if err != nil {
				t.Fatalf("step %d: %s /%s %s: %v", i, s.user, s.name, s.text, err)
			}
			if diff := cmp.Diff(reply, s.wantReply); diff != "" {
				t.Errorf("step %d: %s /%s %s reply mismatch (-got +want):\n%s", i, s.user, s.name, s.text, diff)
			}
			continue
		}
		if got := userError(t, err, s.wantCode).Message; got != s.wantMsg {
			t.Errorf("step %d: %s /%s %s error = %q, want %q", i, s.user, s.name, s.text, got, s.wantMsg)
		}
	}

	var ran []string
	for _, j := range e.runner.ran() {
		ran = append(ran, j.TaskID+" "+j.Image)
	}
	want := []string{"1 example/terraform:1.9", "3 example/dev:latest", "4 example/terraform:1.9"}
	if diff := cmp.Diff(ran, want); diff != "" {
		t.Errorf("tasks run mismatch (-got +want):\n%s", diff)
	}

	var lockEvents []taskbot.Event
	for _, ev := range e.store.events(t) {
		if ev.Type == taskbot.EventStackLocked || ev.Type == taskbot.EventStackUnlocked {
			lockEvents = append(lockEvents, ev)
		}
	}
	wantEvents := []taskbot.Event{
		{Type: taskbot.EventStackLocked, Stack: "prod", User: bob, Fields: fields("reason", "db migration")},
		{Type: taskbot.EventStackUnlocked, Stack: "prod", User: bob},
	}
	if diff := cmp.Diff(lockEvents, wantEvents, ignoreEventIDTime); diff != "" {
		t.Errorf("lock audit events mismatch (-got +want):\n%s", diff)
	}
}

// noStackNope is the refusal of stack "nope".
const noStackNope = `There is no stack "nope". ` + "`/task help` lists the stacks you may use."

func TestLockRefuses(t *testing.T) {
	tests := []struct {
		name, user, cmd, text string
		wantCode              taskbot.Code
		wantMsg               string
	}{
		{
			name: "not a writer", user: carol, cmd: "lock", text: "prod",
			wantCode: taskbot.EForbidden,
			wantMsg: "You are not a writer of stack *prod*, so you cannot lock it. " +
				"Its writers: <@UALICE>, <@UBOB>, <!subteam^SOPS>.",
		},
		{
			name: "unknown stack", user: alice, cmd: "lock", text: "nope",
			wantCode: taskbot.ENotFound,
			wantMsg:  noStackNope,
		},
		{
			name: "secret in the reason", user: alice, cmd: "lock", text: "prod rotating " + dbPassword,
			wantCode: taskbot.EInvalid,
			wantMsg:  "Your reason contains a secret value; write it without.",
		},
		{
			name: "reason too long", user: alice, cmd: "lock", text: "prod " + strings.Repeat("é", 301),
			wantCode: taskbot.EInvalid,
			wantMsg:  "Your reason has 301 characters; keep it to 300, and link to the details.",
		},
		{
			name: "unlock unknown stack", user: alice, cmd: "unlock", text: "nope",
			wantCode: taskbot.ENotFound,
			wantMsg:  noStackNope,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)

			_, err := e.do(t, tt.user, tt.cmd, tt.text)

			if got := userError(t, err, tt.wantCode).Message; got != tt.wantMsg {
				t.Errorf("Handle error = %q, want %q", got, tt.wantMsg)
			}
			if locks, err := e.store.Locks(t.Context()); err != nil || len(locks) != 0 {
				t.Errorf("Locks() = %+v, %v; want none", locks, err)
			}
			if evs := e.store.events(t); len(evs) != 0 {
				t.Errorf("audit events = %+v, want none", evs)
			}
		})
	}
}

func TestLockByGroupMember(t *testing.T) {
	e := newEnv(t)
	if _, err := e.do(t, dave, "lock", "prod"); err != nil {
		t.Fatalf("Handle /lock by a member of a writing user group: %v", err)
	}
	l, err := e.store.LockOf(t.Context(), "prod")
	if err != nil || l == nil || l.User != dave {
		t.Errorf("LockOf(prod) = %+v, %v; want dave's lock", l, err)
	}
}

func TestLockList(t *testing.T) {
	e := newEnv(t)
	e.runner = newBlockingRunner(t)
	e.svc.Runner = e.runner

	reply, err := e.do(t, alice, "lock", "")
	if err != nil {
		t.Fatalf("Handle /lock: %v", err)
	}
	if diff := cmp.Diff(reply, task.Reply{Text: "No stack is locked and no task is running."}); diff != "" {
		t.Errorf("empty lock list mismatch (-got +want):\n%s", diff)
	}

	if _, err := e.do(t, bob, "lock", "prod db migration"); err != nil {
		t.Fatalf("Handle /lock prod: %v", err)
	}
	running := e.doAsync(t, carol, "task", "dev make test")
	e.runner.waitStarted(t)

	reply, err = e.do(t, eve, "lock", "")
	if err != nil {
		t.Fatalf("Handle /lock: %v", err)
	}
	locks, err := e.store.Locks(t.Context())
	if err != nil || len(locks) != 2 {
		t.Fatalf("Locks() = %+v, %v; want a lease on dev and a lock on prod", locks, err)
	}
	since := func(i int) string { return locks[i].Since.UTC().Format("2006-01-02 15:04 MST") }
	want := fmt.Sprintf("• *dev*: task 1 by <@UCAROL> running since %s\n"+
		"• *prod*: locked by <@UBOB> since %s: db migration", since(0), since(1))
	if diff := cmp.Diff(reply, task.Reply{Text: want}); diff != "" {
		t.Errorf("lock list mismatch (-got +want):\n%s", diff)
	}

	e.runner.unblock()
	if err := receive(t, running); err != nil {
		t.Fatalf("Handle of the running task: %v", err)
	}
}

func TestLockAuditFailure(t *testing.T) {
	t.Run("new lock is undone", func(t *testing.T) {
		e := newEnv(t)
		e.store.failAppend(taskbot.EventStackLocked, errAudit)

		if _, err := e.do(t, bob, "lock", "prod db migration"); !errors.Is(err, errAudit) {
			t.Errorf("Handle /lock error = %v, want it to wrap %v", err, errAudit)
		}
		if l, err := e.store.LockOf(t.Context(), "prod"); err != nil || l != nil {
			t.Errorf("LockOf(prod) = %+v, %v; want no lock: a lock nobody can account for must not stand", l, err)
		}
	})

	// Locking again only changes the reason. When that change cannot be
	// audited, the lock taken (and audited) before must stay.
	t.Run("earlier lock stays", func(t *testing.T) {
		e := newEnv(t)
		if _, err := e.do(t, bob, "lock", "prod db migration"); err != nil {
			t.Fatalf("Handle /lock: %v", err)
		}
		e.store.failAppend(taskbot.EventStackLocked, errAudit)

		if _, err := e.do(t, bob, "lock", "prod db migration, part 2"); !errors.Is(err, errAudit) {
			t.Errorf("Handle /lock error = %v, want it to wrap %v", err, errAudit)
		}
		l, err := e.store.LockOf(t.Context(), "prod")
		if err != nil || l == nil || l.User != bob {
			t.Errorf("LockOf(prod) = %+v, %v; want bob's earlier lock still held", l, err)
		}
	})

	// An unlock nobody can account for must not stand either: the audit
	// log still shows the stack locked.
	t.Run("removed lock is put back", func(t *testing.T) {
		e := newEnv(t)
		if _, err := e.do(t, bob, "lock", "prod db migration"); err != nil {
			t.Fatalf("Handle /lock: %v", err)
		}
		before, err := e.store.LockOf(t.Context(), "prod")
		if err != nil {
			t.Fatalf("LockOf(prod): %v", err)
		}
		e.store.failAppend(taskbot.EventStackUnlocked, errAudit)

		_, err = e.do(t, bob, "unlock", "prod")

		if !errors.Is(err, errAudit) || taskbot.ErrorCode(err) != taskbot.EInternal {
			t.Errorf("Handle /unlock error = %v, want an internal error wrapping %v", err, errAudit)
		}
		after, err := e.store.LockOf(t.Context(), "prod")
		if err != nil {
			t.Fatalf("LockOf(prod): %v", err)
		}
		if diff := cmp.Diff(after, before); diff != "" {
			t.Errorf("lock after the failed unlock mismatch (-got +want):\n%s", diff)
		}
	})
}

func TestLockHelp(t *testing.T) {
	for _, name := range []string{"lock", "unlock"} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)

			reply, err := e.do(t, alice, name, "help")

			if err != nil {
				t.Fatalf("Handle /%s help: %v", name, err)
			}
			if diff := cmp.Diff(reply, task.Reply{Text: command.Usage(name)}); diff != "" {
				t.Errorf("/%s help reply mismatch (-got +want):\n%s", name, diff)
			}
		})
	}
}

func TestLockAgainKeepsReason(t *testing.T) {
	e := newEnv(t)
	if _, err := e.do(t, alice, "lock", "prod migrating the database"); err != nil {
		t.Fatal(err)
	}
	reply, err := e.do(t, alice, "lock", "prod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reply.Text, "migrating the database") {
		t.Errorf("lock again without a reason = %q, want the first reason kept", reply.Text)
	}
}
