package task

import (
	"context"
	"fmt"
	"time"

	"github.com/taskbot/taskbot"
)

// audit appends one event about t, with the extra fields given as key,
// value pairs. Every text is masked first. An error means the step must not
// go ahead: taskbot does nothing it cannot account for.
func (s *Service) audit(ctx context.Context, t *taskbot.Task, user string, typ taskbot.EventType, kv ...string) error {
	ev := taskbot.Event{
		Type:   typ,
		TaskID: t.ID,
		Stack:  s.Masker.String(t.Stack),
		User:   user,
		Time:   time.Now().UTC(),
	}
	for i := 0; i+1 < len(kv); i += 2 {
		ev.Fields = append(ev.Fields, taskbot.Field{Key: kv[i], Value: s.Masker.String(kv[i+1])})
	}
	if _, err := s.Store.Append(ctx, ev); err != nil {
		return fmt.Errorf("audit %s of task %s: %w", typ, t.ID, err)
	}
	return nil
}
