package store_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/taskbot/taskbot"
)

func TestAppendFieldOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		when := time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("X", 3600))
		ev := taskbot.Event{
			Type: taskbot.EventFailed, TaskID: "7", Stack: "prod", User: "U1", Time: when,
			Fields: []taskbot.Field{{Key: "zeta", Value: "1"}, {Key: "alpha", Value: "2"}, {Key: "mid", Value: "3"}},
		}
		if _, err := e.store.Append(t.Context(), ev); err != nil {
			t.Fatalf("Append: %v", err)
		}

		raw, err := e.rdb.Do(t.Context(), "XRANGE", "taskbot:audit", "-", "+").Slice()
		if err != nil || len(raw) != 1 {
			t.Fatalf("XRANGE = %v, %v; want one entry", raw, err)
		}
		var keys, values []any
		flat := raw[0].([]any)[1].([]any)
		for i := 0; i < len(flat); i += 2 {
			keys, values = append(keys, flat[i]), append(values, flat[i+1])
		}
		wantKeys := []any{"type", "task_id", "stack", "user", "time", "zeta", "alpha", "mid"}
		if diff := cmp.Diff(keys, wantKeys); diff != "" {
			t.Errorf("entry keys mismatch (-got +want):\n%s", diff)
		}
		if got, want := values[4], "2026-01-02T02:04:05.0000006Z"; got != want {
			t.Errorf("time = %v; want %v", got, want)
		}
	})
}

func TestEvents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		var all []taskbot.Event
		types := []taskbot.EventType{
			taskbot.EventRequested, taskbot.EventStarted, taskbot.EventStackUnlocked,
		}
		for i, typ := range types {
			ev := taskbot.Event{
				Type: typ, TaskID: "1", Stack: "prod", User: "U1", Time: base.Add(time.Duration(i)),
			}
			if typ != taskbot.EventStackUnlocked {
				ev.Fields = []taskbot.Field{{Key: "n", Value: strconv.Itoa(i)}, {Key: "command", Value: "a\nb"}}
			}
			id, err := e.store.Append(t.Context(), ev)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			ev.ID = id
			all = append(all, ev)
		}

		for _, n := range []int{0, 2, 10} {
			got, err := e.store.Events(t.Context(), n)
			if err != nil {
				t.Fatalf("Events(%d): %v", n, err)
			}
			want := all[len(all)-min(n, len(all)):]
			if diff := cmp.Diff(got, want, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Events(%d) mismatch (-got +want):\n%s", n, diff)
			}
		}
	})
}
