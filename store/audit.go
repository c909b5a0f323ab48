package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskbot/taskbot"
)

// eventHead lists the fields every audit entry starts with, in order.
var eventHead = []string{"type", "task_id", "stack", "user", "time"}

// Append adds ev to the audit stream <prefix>audit and returns the entry's
// ID. It writes type, task_id, stack, user and time first, in that order,
// then ev.Fields in theirs; a zero ev.Time means now. Mask secrets in ev
// before calling: the stream keeps what it is given.
func (s *Store) Append(ctx context.Context, ev taskbot.Event) (string, error) {
	if ev.Time.IsZero() {
		ev.Time = now()
	}

	// A flat slice rather than a map keeps the fields in order.
	values := make([]any, 0, 2*(len(eventHead)+len(ev.Fields)))
	values = append(values,
		"type", string(ev.Type),
		"task_id", ev.TaskID,
		"stack", ev.Stack,
		"user", ev.User,
		"time", formatTime(ev.Time),
	)
	for _, f := range ev.Fields {
		values = append(values, f.Key, f.Value)
	}

	id, err := s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.key("audit"), Values: values}).Result()
	if err != nil {
		return "", fmt.Errorf("append %s event: %w", ev.Type, err)
	}
	return id, nil
}

// Events returns the last n audit events, oldest first. Each event's
// Fields hold the fields after the fixed ones, in stream order.
func (s *Store) Events(ctx context.Context, n int) ([]taskbot.Event, error) {
	if n <= 0 {
		return nil, nil
	}

	// go-redis reads entries into maps, which lose the field order, so the
	// reply is read raw.
	reply, err := s.rdb.Do(ctx, "XREVRANGE", s.key("audit"), "+", "-", "COUNT", n).Slice()
	if err != nil {
		return nil, fmt.Errorf("read audit events: %w", err)
	}

	events := make([]taskbot.Event, 0, len(reply))
	for _, entry := range slices.Backward(reply) {
		ev, err := parseEntry(entry)
		if err != nil {
			return nil, fmt.Errorf("read audit events: %w", err)
		}
		events = append(events, ev)
	}
	return events, nil
}

// parseEntry reads one raw stream entry: {id, {key, value, …}}.
func parseEntry(entry any) (taskbot.Event, error) {
	pair, ok := entry.([]any)
	if !ok || len(pair) != 2 {
		return taskbot.Event{}, fmt.Errorf("unexpected stream entry %T", entry)
	}
	id, okID := pair[0].(string)
	flat, okFlat := pair[1].([]any)
	if !okID || !okFlat || len(flat)%2 != 0 || len(flat) < 2*len(eventHead) {
		return taskbot.Event{}, fmt.Errorf("malformed stream entry %v", pair[0])
	}

	fields := make([]taskbot.Field, len(flat)/2)
	for i := range fields {
		k, okK := flat[2*i].(string)
		v, okV := flat[2*i+1].(string)
		if !okK || !okV {
			return taskbot.Event{}, fmt.Errorf("malformed stream entry %s", id)
		}
		fields[i] = taskbot.Field{Key: k, Value: v}
	}
	return newEvent(id, fields)
}

// newEvent builds an event from an entry's fields, which start with
// eventHead.
func newEvent(id string, fields []taskbot.Field) (taskbot.Event, error) {
	head := make(map[string]string, len(eventHead))
	for i, key := range eventHead {
		if fields[i].Key != key {
			return taskbot.Event{}, fmt.Errorf("entry %s: field %d is %q, want %q",
				id, i, fields[i].Key, key)
		}
		head[key] = fields[i].Value
	}
	t, err := time.Parse(time.RFC3339Nano, head["time"])
	if err != nil {
		return taskbot.Event{}, fmt.Errorf("entry %s: parse time: %w", id, err)
	}

	ev := taskbot.Event{
		ID:     id,
		Type:   taskbot.EventType(head["type"]),
		TaskID: head["task_id"],
		Stack:  head["stack"],
		User:   head["user"],
		Time:   t,
	}
	if len(fields) > len(eventHead) {
		ev.Fields = fields[len(eventHead):]
	}
	return ev, nil
}
