package task

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/runner"
)

// orphanDetail is what a task whose replica stopped shows.
const orphanDetail = "taskbot lost track of this task: the replica running it stopped"

// Reap cleans up after replicas of this deployment that crashed or were
// killed: it removes the containers no live lease accounts for, since the
// stack may already be another task's, and fails the tasks left running
// without a lease, whether or not their container got started.
func (s *Service) Reap(ctx context.Context) error {
	// Containers and running tasks are listed before leases are read: a
	// task takes its lease before it is marked running and before it
	// creates its container, so a live task always finds its lease.
	cs, err := s.Runner.Containers(ctx, s.Owner)
	if err != nil {
		return err
	}
	running, err := s.Store.RunningTasks(ctx)
	if err != nil {
		return err
	}
	live, err := s.liveLeases(ctx)
	if err != nil {
		return err
	}

	err = s.removeOrphans(ctx, cs, func(c runner.Container) bool { return live[c.Stack] != c.TaskID })
	return errors.Join(err, s.failUnleased(ctx, running, live))
}

// failUnleased fails the running tasks whose stack's lease is not theirs.
func (s *Service) failUnleased(ctx context.Context, ids []string, live map[string]string) error {
	var errs []error
	for _, id := range ids {
		t, err := s.Store.Task(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("read running task %s: %w", id, err))
			continue
		}
		if live[t.Stack] != id {
			errs = append(errs, s.failOrphan(ctx, id))
		}
	}
	return errors.Join(errs...)
}

// ReapEvery runs Reap every interval until ctx ends, logging failures.
func (s *Service) ReapEvery(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := s.Reap(ctx); err != nil && ctx.Err() == nil {
			s.Log.WithError(err).Warn("reaping orphaned containers failed")
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// reap removes the containers orphan picks.
func (s *Service) reap(ctx context.Context, orphan func(runner.Container) bool) error {
	cs, err := s.Runner.Containers(ctx, s.Owner)
	if err != nil {
		return err
	}
	return s.removeOrphans(ctx, cs, orphan)
}

// liveLeases maps each stack held by a running task to that task's ID.
func (s *Service) liveLeases(ctx context.Context) (map[string]string, error) {
	locks, err := s.Store.Locks(ctx)
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	live := map[string]string{}
	for _, l := range locks {
		if l.Kind == taskbot.LockTask {
			live[l.Stack] = l.TaskID
		}
	}
	return live, nil
}

// removeOrphans removes the containers orphan picks and fails their tasks.
func (s *Service) removeOrphans(ctx context.Context, cs []runner.Container, orphan func(runner.Container) bool) error {
	var errs []error
	for _, c := range cs {
		if !orphan(c) {
			continue
		}
		s.Log.WithFields(logrus.Fields{"task_id": c.TaskID, "stack": c.Stack}).Warn("removing orphaned container")
		if err := s.Runner.Remove(ctx, c.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, s.failOrphan(ctx, c.TaskID))
	}
	return errors.Join(errs...)
}

// failOrphan marks the task of a removed orphan failed, if it still shows
// running, so that its message stops saying so.
func (s *Service) failOrphan(ctx context.Context, id string) error {
	won, err := s.Store.TransitionTask(ctx, id, taskbot.StateRunning, taskbot.StateFailed)
	if errors.Is(err, taskbot.ErrNotFound) || (err == nil && !won) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fail orphaned task %s: %w", id, err)
	}
	t, err := s.Store.Task(ctx, id)
	if err != nil {
		return fmt.Errorf("read orphaned task %s: %w", id, err)
	}
	if err := s.finish(ctx, t, taskbot.StateFailed, 0, orphanDetail); err != nil {
		return err
	}
	if t.MessageTS == "" {
		return nil
	}
	return s.Chat.UpdateTask(ctx, s.view(*t, nil))
}
