package store_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/store"
)

// ignoreSince leaves the time a lock was taken out of comparisons.
var ignoreSince = cmpopts.IgnoreFields(taskbot.Lock{}, "Since")

// lockedBy returns the lock that err reports, failing unless err is a
// *taskbot.LockedError.
func lockedBy(t *testing.T, err error) taskbot.Lock {
	t.Helper()
	var le *taskbot.LockedError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v; want a *taskbot.LockedError", err)
	}
	return le.Lock
}

func TestAcquireLeaseExcludes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		lease, err := e.store.AcquireLease(t.Context(), "prod", "1", "U1", longTTL)
		if err != nil {
			t.Fatalf("AcquireLease: %v", err)
		}
		if diff := cmp.Diff(lease, taskbot.Lease{Stack: "prod", TaskID: "1", User: "U1", Token: 1}); diff != "" {
			t.Errorf("AcquireLease mismatch (-got +want):\n%s", diff)
		}

		// The holder's own next task waits as much as anyone else's.
		for _, user := range []string{"U2", "U1"} {
			_, err := e.store.AcquireLease(t.Context(), "prod", "2", user, longTTL)
			lock := lockedBy(t, err)
			want := taskbot.Lock{Stack: "prod", Kind: taskbot.LockTask, User: "U1", TaskID: "1"}
			if diff := cmp.Diff(lock, want, ignoreSince); diff != "" || lock.Since.IsZero() {
				t.Errorf("second lease by %s: lock mismatch (-got +want):\n%s\nSince %v", user, diff, lock.Since)
			}
		}

		if _, err := e.store.AcquireLease(t.Context(), "dev", "2", "U2", longTTL); err != nil {
			t.Errorf("lease on another stack: %v", err)
		}
	})
}

func TestManualLockBlocksOthersLease(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		if _, err := e.store.Lock(t.Context(), "prod", "UA", "migrating"); err != nil {
			t.Fatalf("Lock: %v", err)
		}

		_, err := e.store.AcquireLease(t.Context(), "prod", "1", "UB", longTTL)
		want := taskbot.Lock{Stack: "prod", Kind: taskbot.LockManual, User: "UA", Reason: "migrating"}
		if diff := cmp.Diff(lockedBy(t, err), want, ignoreSince); diff != "" {
			t.Errorf("lease by UB: lock mismatch (-got +want):\n%s", diff)
		}
		if _, err := e.store.AcquireLease(t.Context(), "prod", "2", "UA", longTTL); err != nil {
			t.Errorf("lease by the lock's holder UA: %v", err)
		}
	})
}

func TestLeaseExpires(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		if _, err := e.store.AcquireLease(t.Context(), "prod", "1", "U1", shortTTL); err != nil {
			t.Fatalf("AcquireLease: %v", err)
		}
		e.elapse(2 * shortTTL)

		if locks, err := e.store.Locks(t.Context()); err != nil || len(locks) != 0 {
			t.Errorf("Locks after expiry = %v, %v; want none", locks, err)
		}
		if _, err := e.store.AcquireLease(t.Context(), "prod", "2", "U2", longTTL); err != nil {
			t.Errorf("AcquireLease after expiry: %v", err)
		}
	})
}

func TestRenewLeaseSetsTTL(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		lease, err := e.store.AcquireLease(t.Context(), "prod", "1", "U1", longTTL)
		if err != nil {
			t.Fatalf("AcquireLease: %v", err)
		}
		if err := e.store.RenewLease(t.Context(), lease, shortTTL); err != nil {
			t.Fatalf("RenewLease: %v", err)
		}
		e.elapse(2 * shortTTL)

		if _, err := e.store.AcquireLease(t.Context(), "prod", "2", "U2", longTTL); err != nil {
			t.Errorf("AcquireLease after the renewed TTL passed: %v", err)
		}
	})
}

func TestLeaseFencing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		old, err := e.store.AcquireLease(t.Context(), "prod", "1", "U1", shortTTL)
		if err != nil {
			t.Fatalf("AcquireLease: %v", err)
		}
		e.elapse(2 * shortTTL)
		cur, err := e.store.AcquireLease(t.Context(), "prod", "2", "U2", longTTL)
		if err != nil {
			t.Fatalf("AcquireLease after expiry: %v", err)
		}
		if cur.Token <= old.Token {
			t.Errorf("token after re-acquire = %d; want more than %d", cur.Token, old.Token)
		}

		if err := e.store.RenewLease(t.Context(), old, longTTL); !errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("RenewLease(old): err = %v; want ErrLeaseLost", err)
		}
		if err := e.store.ReleaseLease(t.Context(), old); !errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("ReleaseLease(old): err = %v; want ErrLeaseLost", err)
		}
		_, err = e.store.AcquireLease(t.Context(), "prod", "3", "U3", longTTL)
		if lock := lockedBy(t, err); lock.TaskID != "2" {
			t.Errorf("lease after the old holder's calls is held by task %q; want 2", lock.TaskID)
		}

		if err := e.store.RenewLease(t.Context(), cur, longTTL); err != nil {
			t.Errorf("RenewLease(current): %v", err)
		}
		if err := e.store.ReleaseLease(t.Context(), cur); err != nil {
			t.Errorf("ReleaseLease(current): %v", err)
		}
		if err := e.store.ReleaseLease(t.Context(), cur); !errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("second ReleaseLease(current): err = %v; want ErrLeaseLost", err)
		}
	})
}

func TestLockUnlock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		s, ctx := e.store, t.Context()
		held := taskbot.Lock{Stack: "prod", Kind: taskbot.LockManual, User: "UA", Reason: "migrating"}

		first, err := s.Lock(ctx, "prod", "UA", "migrating")
		if diff := cmp.Diff(first, held, ignoreSince); err != nil || diff != "" {
			t.Fatalf("Lock by UA: %v, mismatch (-got +want):\n%s", err, diff)
		}
		_, err = s.Lock(ctx, "prod", "UB", "mine")
		if diff := cmp.Diff(lockedBy(t, err), held, ignoreSince); diff != "" {
			t.Errorf("Lock by UB: lock mismatch (-got +want):\n%s", diff)
		}

		held.Reason, held.Since = "still migrating", first.Since
		if got, err := s.Lock(ctx, "prod", "UA", "still migrating"); err != nil || !cmp.Equal(got, held) {
			t.Errorf("Lock again by UA = %+v, %v; want %+v (new reason, same Since)", got, err, held)
		}
		_, err = s.Unlock(ctx, "prod", "UB")
		if diff := cmp.Diff(lockedBy(t, err), held); diff != "" {
			t.Errorf("Unlock by UB: lock mismatch (-got +want):\n%s", diff)
		}
		if got, err := s.LockOf(ctx, "prod"); err != nil || !cmp.Equal(got, &held) {
			t.Errorf("LockOf after Unlock by UB = %+v, %v; want %+v", got, err, held)
		}

		if got, err := s.Unlock(ctx, "prod", "UA"); err != nil || !cmp.Equal(got, held) {
			t.Errorf("Unlock by UA = %+v, %v; want %+v", got, err, held)
		}
		if got, err := s.LockOf(ctx, "prod"); err != nil || got != nil {
			t.Errorf("LockOf after Unlock = %+v, %v; want nil, nil", got, err)
		}
		if _, err := s.Unlock(ctx, "prod", "UA"); !errors.Is(err, store.ErrNotLocked) {
			t.Errorf("second Unlock: err = %v; want ErrNotLocked", err)
		}
	})
}

func TestLocks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		s, ctx := e.store, t.Context()
		if _, err := s.Lock(ctx, "b", "UA", "why"); err != nil {
			t.Fatalf("Lock: %v", err)
		}
		for _, stack := range []string{"b", "a"} {
			if _, err := s.AcquireLease(ctx, stack, "task-"+stack, "UA", longTTL); err != nil {
				t.Fatalf("AcquireLease(%s): %v", stack, err)
			}
		}

		got, err := s.Locks(ctx)
		if err != nil {
			t.Fatalf("Locks: %v", err)
		}
		want := []taskbot.Lock{
			{Stack: "a", Kind: taskbot.LockTask, User: "UA", TaskID: "task-a"},
			{Stack: "b", Kind: taskbot.LockManual, User: "UA", Reason: "why"},
			{Stack: "b", Kind: taskbot.LockTask, User: "UA", TaskID: "task-b"},
		}
		if diff := cmp.Diff(got, want, ignoreSince); diff != "" {
			t.Errorf("Locks mismatch (-got +want):\n%s", diff)
		}
	})
}

func TestRestoreLock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		s, ctx := e.store, t.Context()
		if _, err := s.Lock(ctx, "prod", "UA", "migrating"); err != nil {
			t.Fatalf("Lock: %v", err)
		}
		removed, err := s.Unlock(ctx, "prod", "UA")
		if err != nil {
			t.Fatalf("Unlock: %v", err)
		}

		if err := s.RestoreLock(ctx, removed); err != nil {
			t.Fatalf("RestoreLock: %v", err)
		}
		if got, err := s.LockOf(ctx, "prod"); err != nil || !cmp.Equal(got, &removed) {
			t.Errorf("LockOf after RestoreLock = %+v, %v; want %+v (the same Since)", got, err, removed)
		}

		// Once another user holds the stack, the old lock stays gone.
		if _, err := s.Unlock(ctx, "prod", "UA"); err != nil {
			t.Fatalf("Unlock: %v", err)
		}
		taken, err := s.Lock(ctx, "prod", "UB", "mine")
		if err != nil {
			t.Fatalf("Lock by UB: %v", err)
		}
		if diff := cmp.Diff(lockedBy(t, s.RestoreLock(ctx, removed)), taken); diff != "" {
			t.Errorf("RestoreLock over UB's lock: lock mismatch (-got +want):\n%s", diff)
		}
		if got, err := s.LockOf(ctx, "prod"); err != nil || !cmp.Equal(got, &taken) {
			t.Errorf("LockOf after RestoreLock over UB's lock = %+v, %v; want %+v", got, err, taken)
		}
	})
}
