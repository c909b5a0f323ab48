package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskbot/taskbot"
)

// A stack's manual lock is the hash <prefix>lock:<stack> {user, reason,
// since} and never expires. A running task's lease is the hash
// <prefix>lease:<stack> {task_id, user, token, since} with a TTL; its token
// comes from the counter <prefix>token:<stack>, which is never reset, so
// tokens only grow. The set <prefix>stacks names every stack that was ever
// locked or leased, so that [Store.Locks] needs no key scan.

// acquireScript takes a stack's lease unless another user's manual lock or
// any lease holds it. It must be atomic: replicas starting tasks on the same
// stack would otherwise both see it free and both take it.
var acquireScript = redis.NewScript(`
local owner = redis.call('HGET', KEYS[1], 'user')
if owner and owner ~= ARGV[1] then
  return {'manual', unpack(redis.call('HGETALL', KEYS[1]))}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'task', unpack(redis.call('HGETALL', KEYS[2]))}
end
local token = tostring(redis.call('INCR', KEYS[3]))
redis.call('HSET', KEYS[2], 'task_id', ARGV[2], 'user', ARGV[1], 'token', token, 'since', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[5])
return {'ok', 'token', token}
`)

// renewScript extends a lease if the token still holds it. It must be atomic
// so that a lease that expired and was re-taken between the check and the
// write is not extended on behalf of the old holder.
var renewScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// releaseScript deletes a lease if the token still holds it. It must be
// atomic so that an old holder never deletes the next holder's lease.
var releaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

// lockScript takes or updates a manual lock unless another user holds it.
// It must be atomic so that two users locking at once cannot both succeed.
var lockScript = redis.NewScript(`
local owner = redis.call('HGET', KEYS[1], 'user')
if owner and owner ~= ARGV[1] then
  return {'locked', unpack(redis.call('HGETALL', KEYS[1]))}
end
if not owner then
  redis.call('HSET', KEYS[1], 'user', ARGV[1], 'since', ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[4])
end
redis.call('HSET', KEYS[1], 'reason', ARGV[2])
return {'ok', unpack(redis.call('HGETALL', KEYS[1]))}
`)

// unlockScript removes a manual lock held by the user. It must be atomic so
// that it never removes a lock that another user took after the check.
var unlockScript = redis.NewScript(`
local lock = redis.call('HGETALL', KEYS[1])
if #lock == 0 then return {'none'} end
if redis.call('HGET', KEYS[1], 'user') ~= ARGV[1] then
  return {'locked', unpack(lock)}
end
redis.call('DEL', KEYS[1])
return {'ok', unpack(lock)}
`)

// AcquireLease takes the stack's lease for the task for ttl. If another
// user's manual lock or any task's lease holds the stack, it returns a
// *[taskbot.LockedError] describing that hold. Renew the lease well within
// ttl: a lease that expires frees the stack, so that a crashed replica does
// not hold it forever.
func (s *Store) AcquireLease(ctx context.Context, stack, taskID, user string, ttl time.Duration) (taskbot.Lease, error) {
	ms, err := ttlMillis(ttl)
	if err != nil {
		return taskbot.Lease{}, fmt.Errorf("acquire lease on %q: %w", stack, err)
	}

	keys := []string{
		s.key("lock", stack), s.key("lease", stack), s.key("token", stack), s.key("stacks"),
	}
	since := formatTime(now())
	reply, err := acquireScript.Run(ctx, s.rdb, keys, user, taskID, since, ms, stack).Result()
	if err != nil {
		return taskbot.Lease{}, fmt.Errorf("acquire lease on %q: %w", stack, err)
	}
	status, m, err := replyFields(reply)
	if err != nil {
		return taskbot.Lease{}, fmt.Errorf("acquire lease on %q: %w", stack, err)
	}

	if status != "ok" {
		lock, err := parseLock(stack, taskbot.LockKind(status), m)
		if err != nil {
			return taskbot.Lease{}, fmt.Errorf("acquire lease on %q: %w", stack, err)
		}
		return taskbot.Lease{}, &taskbot.LockedError{Lock: lock}
	}
	token, err := strconv.ParseInt(m["token"], 10, 64)
	if err != nil {
		return taskbot.Lease{}, fmt.Errorf("acquire lease on %q: parse token: %w", stack, err)
	}
	return taskbot.Lease{Stack: stack, TaskID: taskID, User: user, Token: token}, nil
}

// RenewLease extends l to ttl from now. It returns [ErrLeaseLost] if l's
// token no longer holds the stack.
func (s *Store) RenewLease(ctx context.Context, l taskbot.Lease, ttl time.Duration) error {
	ms, err := ttlMillis(ttl)
	if err != nil {
		return fmt.Errorf("renew lease on %q: %w", l.Stack, err)
	}

	keys := []string{s.key("lease", l.Stack)}
	held, err := renewScript.Run(ctx, s.rdb, keys, strconv.FormatInt(l.Token, 10), ms).Bool()
	if err != nil {
		return fmt.Errorf("renew lease on %q: %w", l.Stack, err)
	}
	if !held {
		return fmt.Errorf("renew lease on %q: %w", l.Stack, ErrLeaseLost)
	}
	return nil
}

// ReleaseLease frees the stack held by l. It returns [ErrLeaseLost], and
// leaves the stack alone, if l's token no longer holds it.
func (s *Store) ReleaseLease(ctx context.Context, l taskbot.Lease) error {
	keys := []string{s.key("lease", l.Stack)}
	held, err := releaseScript.Run(ctx, s.rdb, keys, strconv.FormatInt(l.Token, 10)).Bool()
	if err != nil {
		return fmt.Errorf("release lease on %q: %w", l.Stack, err)
	}
	if !held {
		return fmt.Errorf("release lease on %q: %w", l.Stack, ErrLeaseLost)
	}
	return nil
}

// Lock takes a manual lock on the stack for user, or updates the reason of
// the lock user already holds. If another user holds it, it returns a
// *[taskbot.LockedError]. A running task's lease does not stop Lock: the lock
// applies to the tasks that start after it.
func (s *Store) Lock(ctx context.Context, stack, user, reason string) (taskbot.Lock, error) {
	return s.lock(ctx, stack, user, reason, now())
}

// RestoreLock puts back l, a manual lock that [Store.Unlock] removed, as it
// was, since included. If another user has locked the stack meanwhile, it
// returns a *[taskbot.LockedError]; if l's user has, that lock stays, with
// l's reason.
func (s *Store) RestoreLock(ctx context.Context, l taskbot.Lock) error {
	_, err := s.lock(ctx, l.Stack, l.User, l.Reason, l.Since)
	return err
}

// lock runs lockScript; since is when the lock counts as taken if it is new.
func (s *Store) lock(ctx context.Context, stack, user, reason string, since time.Time) (taskbot.Lock, error) {
	keys := []string{s.key("lock", stack), s.key("stacks")}
	reply, err := lockScript.Run(ctx, s.rdb, keys, user, reason, formatTime(since), stack).Result()
	if err != nil {
		return taskbot.Lock{}, fmt.Errorf("lock %q: %w", stack, err)
	}
	status, m, err := replyFields(reply)
	if err != nil {
		return taskbot.Lock{}, fmt.Errorf("lock %q: %w", stack, err)
	}

	lock, err := parseLock(stack, taskbot.LockManual, m)
	if err != nil {
		return taskbot.Lock{}, fmt.Errorf("lock %q: %w", stack, err)
	}
	if status != "ok" {
		return taskbot.Lock{}, &taskbot.LockedError{Lock: lock}
	}
	return lock, nil
}

// Unlock removes user's manual lock on the stack and returns it. It returns
// [ErrNotLocked] if there is none, and a *[taskbot.LockedError] if another
// user holds it.
func (s *Store) Unlock(ctx context.Context, stack, user string) (taskbot.Lock, error) {
	reply, err := unlockScript.Run(ctx, s.rdb, []string{s.key("lock", stack)}, user).Result()
	if err != nil {
		return taskbot.Lock{}, fmt.Errorf("unlock %q: %w", stack, err)
	}
	status, m, err := replyFields(reply)
	if err != nil {
		return taskbot.Lock{}, fmt.Errorf("unlock %q: %w", stack, err)
	}
	if status == "none" {
		return taskbot.Lock{}, fmt.Errorf("unlock %q: %w", stack, ErrNotLocked)
	}

	lock, err := parseLock(stack, taskbot.LockManual, m)
	if err != nil {
		return taskbot.Lock{}, fmt.Errorf("unlock %q: %w", stack, err)
	}
	if status != "ok" {
		return taskbot.Lock{}, &taskbot.LockedError{Lock: lock}
	}
	return lock, nil
}

// Locks returns the manual locks and live task leases of all stacks, sorted
// by stack and then by kind.
func (s *Store) Locks(ctx context.Context) ([]taskbot.Lock, error) {
	stacks, err := s.rdb.SMembers(ctx, s.key("stacks")).Result()
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	slices.Sort(stacks)

	// One round trip for all stacks; the list need not be one snapshot.
	holds := make([][2]*redis.MapStringStringCmd, len(stacks))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, stack := range stacks {
			holds[i] = [2]*redis.MapStringStringCmd{
				p.HGetAll(ctx, s.key("lock", stack)),
				p.HGetAll(ctx, s.key("lease", stack)),
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}

	var locks []taskbot.Lock
	for i, stack := range stacks {
		// Manual sorts before task, the order of holds[i].
		for j, kind := range []taskbot.LockKind{taskbot.LockManual, taskbot.LockTask} {
			m := holds[i][j].Val()
			if len(m) == 0 {
				continue
			}
			lock, err := parseLock(stack, kind, m)
			if err != nil {
				return nil, fmt.Errorf("list locks: %w", err)
			}
			locks = append(locks, lock)
		}
	}
	return locks, nil
}

// LockOf returns the stack's manual lock, or nil if it has none.
func (s *Store) LockOf(ctx context.Context, stack string) (*taskbot.Lock, error) {
	m, err := s.rdb.HGetAll(ctx, s.key("lock", stack)).Result()
	if err != nil {
		return nil, fmt.Errorf("get lock of %q: %w", stack, err)
	}
	if len(m) == 0 {
		return nil, nil
	}

	lock, err := parseLock(stack, taskbot.LockManual, m)
	if err != nil {
		return nil, fmt.Errorf("get lock of %q: %w", stack, err)
	}
	return &lock, nil
}

// parseLock reads a lock or lease hash of the given kind.
func parseLock(stack string, kind taskbot.LockKind, m map[string]string) (taskbot.Lock, error) {
	if kind != taskbot.LockManual && kind != taskbot.LockTask {
		return taskbot.Lock{}, fmt.Errorf("unexpected lock kind %q", kind)
	}
	since, err := time.Parse(time.RFC3339Nano, m["since"])
	if err != nil {
		return taskbot.Lock{}, fmt.Errorf("parse since: %w", err)
	}

	return taskbot.Lock{
		Stack:  stack,
		Kind:   kind,
		User:   m["user"],
		TaskID: m["task_id"],
		Reason: m["reason"],
		Since:  since,
	}, nil
}

// errShortTTL reports a lease TTL that would expire the lease at once.
var errShortTTL = errors.New("lease ttl must be at least 1ms")

// ttlMillis returns ttl in whole milliseconds, the unit of PEXPIRE.
func ttlMillis(ttl time.Duration) (int64, error) {
	ms := ttl.Milliseconds()
	if ms < 1 {
		return 0, errShortTTL
	}
	return ms, nil
}
