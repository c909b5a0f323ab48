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

// transitionScript sets a task's state only if it still is the expected one,
// and adds ARGV[4], unless empty, to the running index. It must be atomic:
// replicas handling the same button click race to move a task out of
// awaiting_approval, and exactly one of them may win; and a task marked
// running but not indexed would never be reaped if its replica crashed.
// It returns 1 when it moved the task, 0 when the state differed, -1 when
// there is no such task.
var transitionScript = redis.NewScript(`
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
if state ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'updated', ARGV[3])
if ARGV[4] ~= '' then redis.call('SADD', KEYS[2], ARGV[4]) end
return 1
`)

// finishScript sets the final fields of an existing task (KEYS[1]) and
// takes it off the running index (KEYS[2]) in one step, so that a crash
// cannot leave a finished task listed as running. It must be atomic so that
// a task that does not exist is not created as a fragment between the check
// and the write. It returns 0 when there is no such task.
var finishScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'exit_code', ARGV[2], 'detail', ARGV[3], 'updated', ARGV[4])
redis.call('SREM', KEYS[2], ARGV[5])
return 1
`)

// FirstDelivery reports whether key is seen for the first time within ttl.
// Slack retries events and several replicas receive them; only the call that
// returns true should act.
func (s *Store) FirstDelivery(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	first, err := s.rdb.SetNX(ctx, s.key("seen", key), 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("dedupe %q: %w", key, err)
	}
	return first, nil
}

// CreateTask saves t as a new task. It sets t.ID to the next decimal ID and
// t.Created and t.Updated to now.
//
// TODO: tasks are kept forever; expire finished ones after a retention period.
func (s *Store) CreateTask(ctx context.Context, t *taskbot.Task) error {
	seq, err := s.rdb.Incr(ctx, s.key("task", "seq")).Result()
	if err != nil {
		return fmt.Errorf("create task: %w", err)
	}

	t.ID = strconv.FormatInt(seq, 10)
	t.Created = now()
	t.Updated = t.Created
	if err := s.rdb.HSet(ctx, s.key("task", t.ID), taskFields(t)).Err(); err != nil {
		return fmt.Errorf("create task %s: %w", t.ID, err)
	}
	return nil
}

// Task returns the task with the given ID, or an error wrapping
// [taskbot.ErrNotFound].
func (s *Store) Task(ctx context.Context, id string) (*taskbot.Task, error) {
	m, err := s.rdb.HGetAll(ctx, s.key("task", id)).Result()
	if err != nil {
		return nil, fmt.Errorf("get task %s: %w", id, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("get task %s: %w", id, taskbot.ErrNotFound)
	}

	t, err := parseTask(m)
	if err != nil {
		return nil, fmt.Errorf("get task %s: %w", id, err)
	}
	return t, nil
}

// SetTaskMessage records ts as the timestamp of the task's Slack message and
// indexes it, so that [Store.TaskIDByMessage] finds the task from a thread.
func (s *Store) SetTaskMessage(ctx context.Context, id, ts string) error {
	channel, err := s.rdb.HGet(ctx, s.key("task", id), "channel").Result()
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("set message of task %s: %w", id, taskbot.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("set message of task %s: %w", id, err)
	}

	// A task's channel never changes and tasks are never deleted, so the
	// channel read above is still true when these writes land.
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.key("task", id), "message_ts", ts, "updated", formatTime(now()))
		p.Set(ctx, s.key("message", channel, ts), id, 0)
		return nil
	})
	if err != nil {
		return fmt.Errorf("set message of task %s: %w", id, err)
	}
	return nil
}

// TaskIDByMessage returns the ID of the task whose message is ts in channel,
// or an error wrapping [taskbot.ErrNotFound].
func (s *Store) TaskIDByMessage(ctx context.Context, channel, ts string) (string, error) {
	id, err := s.rdb.Get(ctx, s.key("message", channel, ts)).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("find task of message %s/%s: %w", channel, ts, taskbot.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("find task of message %s/%s: %w", channel, ts, err)
	}
	return id, nil
}

// TransitionTask moves the task from state from to state to, and reports
// whether it did: false means the task was no longer in state from. Of
// concurrent callers with the same from, at most one gets true. A task moved
// to running is listed by [Store.RunningTasks] in the same step.
func (s *Store) TransitionTask(ctx context.Context, id string, from, to taskbot.State) (bool, error) {
	keys := []string{s.key("task", id), s.key("running")}
	index := ""
	if to == taskbot.StateRunning {
		index = id
	}
	updated := formatTime(now())
	res, err := transitionScript.Run(ctx, s.rdb, keys, string(from), string(to), updated, index).Int()
	if err != nil {
		return false, fmt.Errorf("transition task %s to %s: %w", id, to, err)
	}
	if res < 0 {
		return false, fmt.Errorf("transition task %s to %s: %w", id, to, taskbot.ErrNotFound)
	}
	return res == 1, nil
}

// RunningTasks returns the IDs of the tasks that were marked running and
// have not finished since: the ones a crashed replica may have left behind.
func (s *Store) RunningTasks(ctx context.Context) ([]string, error) {
	ids, err := s.rdb.SMembers(ctx, s.key("running")).Result()
	if err != nil {
		return nil, fmt.Errorf("list running tasks: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// FinishTask sets the task's final state, exit code and detail.
func (s *Store) FinishTask(ctx context.Context, id string, state taskbot.State, exitCode int, detail string) error {
	keys := []string{s.key("task", id), s.key("running")}
	res, err := finishScript.Run(ctx, s.rdb, keys,
		string(state), strconv.Itoa(exitCode), detail, formatTime(now()), id).Int()
	if err != nil {
		return fmt.Errorf("finish task %s: %w", id, err)
	}
	if res == 0 {
		return fmt.Errorf("finish task %s: %w", id, taskbot.ErrNotFound)
	}
	return nil
}

// AddApproval records that user approved the task. It returns how many
// distinct users have approved it, and whether user's approval is new rather
// than one recorded before.
func (s *Store) AddApproval(ctx context.Context, id, user string) (int, bool, error) {
	var added, count *redis.IntCmd
	key := s.key("approvals", id)

	// MULTI makes the count include exactly the approvals up to this one.
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		added = p.SAdd(ctx, key, user)
		count = p.SCard(ctx, key)
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("add approval of task %s: %w", id, err)
	}
	return int(count.Val()), added.Val() == 1, nil
}

// RemoveApproval takes back user's approval of the task, e.g. one that
// could not be audited.
func (s *Store) RemoveApproval(ctx context.Context, id, user string) error {
	if err := s.rdb.SRem(ctx, s.key("approvals", id), user).Err(); err != nil {
		return fmt.Errorf("remove approval of task %s: %w", id, err)
	}
	return nil
}

// Approvals returns the user IDs that approved the task, sorted.
func (s *Store) Approvals(ctx context.Context, id string) ([]string, error) {
	users, err := s.rdb.SMembers(ctx, s.key("approvals", id)).Result()
	if err != nil {
		return nil, fmt.Errorf("get approvals of task %s: %w", id, err)
	}
	slices.Sort(users)
	return users, nil
}

// taskFields returns the hash fields a task is stored as.
func taskFields(t *taskbot.Task) map[string]any {
	return map[string]any{
		"id":         t.ID,
		"stack":      t.Stack,
		"user":       t.User,
		"channel":    t.Channel,
		"command":    t.Command,
		"skip_init":  strconv.FormatBool(t.SkipInit),
		"state":      string(t.State),
		"exit_code":  strconv.Itoa(t.ExitCode),
		"detail":     t.Detail,
		"message_ts": t.MessageTS,
		"created":    formatTime(t.Created),
		"updated":    formatTime(t.Updated),
	}
}

// parseTask reads a task from its hash fields.
func parseTask(m map[string]string) (*taskbot.Task, error) {
	skipInit, err := strconv.ParseBool(m["skip_init"])
	if err != nil {
		return nil, fmt.Errorf("parse skip_init: %w", err)
	}
	exitCode, err := strconv.Atoi(m["exit_code"])
	if err != nil {
		return nil, fmt.Errorf("parse exit_code: %w", err)
	}
	created, err := time.Parse(time.RFC3339Nano, m["created"])
	if err != nil {
		return nil, fmt.Errorf("parse created: %w", err)
	}
	updated, err := time.Parse(time.RFC3339Nano, m["updated"])
	if err != nil {
		return nil, fmt.Errorf("parse updated: %w", err)
	}

	return &taskbot.Task{
		ID:        m["id"],
		Stack:     m["stack"],
		User:      m["user"],
		Channel:   m["channel"],
		Command:   m["command"],
		SkipInit:  skipInit,
		State:     taskbot.State(m["state"]),
		ExitCode:  exitCode,
		Detail:    m["detail"],
		MessageTS: m["message_ts"],
		Created:   created,
		Updated:   updated,
	}, nil
}
