// Package task is taskbot's task lifecycle: it takes a parsed chat request
// through the writer check, the task policy, approvals and the stack's lock,
// runs the command in the stack's container, and reports every step to the
// chat and to the audit log.
//
// It knows nothing of Slack, Redis, OPA or Docker: the adapters it is given
// through the interfaces below do.
package task

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/command"
	"github.com/taskbot/taskbot/mask"
	"github.com/taskbot/taskbot/policy"
	"github.com/taskbot/taskbot/runner"
)

// Store keeps tasks, locks and the audit log.
type Store interface {
	CreateTask(ctx context.Context, t *taskbot.Task) error
	Task(ctx context.Context, id string) (*taskbot.Task, error)
	SetTaskMessage(ctx context.Context, id, ts string) error
	TaskIDByMessage(ctx context.Context, channel, ts string) (string, error)
	TransitionTask(ctx context.Context, id string, from, to taskbot.State) (bool, error)
	RunningTasks(ctx context.Context) ([]string, error)
	FinishTask(ctx context.Context, id string, state taskbot.State, exitCode int, detail string) error
	AddApproval(ctx context.Context, id, user string) (int, bool, error)
	RemoveApproval(ctx context.Context, id, user string) error
	Approvals(ctx context.Context, id string) ([]string, error)

	AcquireLease(ctx context.Context, stack, taskID, user string, ttl time.Duration) (taskbot.Lease, error)
	RenewLease(ctx context.Context, l taskbot.Lease, ttl time.Duration) error
	ReleaseLease(ctx context.Context, l taskbot.Lease) error
	Lock(ctx context.Context, stack, user, reason string) (taskbot.Lock, error)
	Unlock(ctx context.Context, stack, user string) (taskbot.Lock, error)
	RestoreLock(ctx context.Context, l taskbot.Lock) error
	Locks(ctx context.Context) ([]taskbot.Lock, error)
	LockOf(ctx context.Context, stack string) (*taskbot.Lock, error)

	Append(ctx context.Context, ev taskbot.Event) (string, error)
}

// Policy decides whether a task may run.
type Policy interface {
	Evaluate(ctx context.Context, in policy.Input) (policy.Decision, error)
}

// Runner runs a task's command in a container, and finds and removes the
// containers of tasks whose replica stopped.
type Runner interface {
	Run(ctx context.Context, job runner.Job, stdout, stderr io.Writer) (runner.Result, error)
	Containers(ctx context.Context, owner string) ([]runner.Container, error)
	Remove(ctx context.Context, id string) error
}

// Directory answers who belongs to a chat user group.
type Directory interface {
	GroupMembers(ctx context.Context, group string) ([]string, error)
}

// Chat shows tasks to people: a message per task, whose thread holds the
// task's output.
type Chat interface {
	// PostTask posts the task's message in v.Task.Channel and returns its ts.
	PostTask(ctx context.Context, v View) (string, error)

	// UpdateTask rewrites the task's message to show v.
	UpdateTask(ctx context.Context, v View) error

	// OpenOutput returns where the task's masked output goes.
	OpenOutput(ctx context.Context, t taskbot.Task) (Output, error)

	// Notify tells one user something in a channel, where only they see it.
	Notify(ctx context.Context, channel, user, text string) error
}

// Output receives a task's masked output. Writes may come from two
// goroutines (stdout and stderr) at once.
type Output interface {
	io.Writer

	// Close sends what is still buffered. The task's final status is shown
	// only after Close returns, so output never trails the status.
	Close(ctx context.Context) error
}

// View is what a task's message shows. Every text in it is masked.
type View struct {
	Task      taskbot.Task
	Reasons   []string // why approval is needed, while awaiting it
	Emoji     string   // the approval emoji, without colons
	Approvers []string // user IDs whose approvals counted
}

// Request is one parsed chat command from one user.
type Request struct {
	User    string // Slack user ID: all authorization is by ID
	Channel string
	Command command.Command
}

// Texts for people (Reply.Text, the messages of *taskbot.Error, Task.Detail)
// are Slack mrkdwn: *bold*, `code`, <@U…> mentions. Whatever a person typed
// is escaped in them, so that it cannot turn into markup such as <!channel>;
// the command itself travels unescaped in View.Task.Command.
var markup = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func escape(s string) string { return markup.Replace(s) }

// Reply is what the requester is told in answer. Public replies are seen by
// the whole channel; others only by the requester.
type Reply struct {
	Text   string
	Public bool
}

// Service runs the task lifecycle. Its fields are set once, before use.
type Service struct {
	Stacks    map[string]*taskbot.Stack
	Emoji     string // approval emoji, without colons
	Store     Store
	Policy    Policy
	Runner    Runner
	Directory Directory
	Chat      Chat
	Masker    *mask.Masker
	Log       logrus.FieldLogger

	// Owner names the deployment, as store.DeploymentID does: its containers
	// carry it, and only its containers are reaped.
	Owner string

	// LeaseTTL is how long a stack's lease outlives a replica that stopped
	// renewing it. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration

	// ApprovalTimeout is how long a task may wait for approval. Zero means
	// DefaultApprovalTimeout.
	ApprovalTimeout time.Duration
}

// DefaultLeaseTTL is the lease TTL when Service.LeaseTTL is zero. A crashed
// replica's stack is free again after at most this long.
const DefaultLeaseTTL = 30 * time.Second

// DefaultApprovalTimeout is the approval timeout when
// Service.ApprovalTimeout is zero.
const DefaultApprovalTimeout = 24 * time.Hour

// ErrMisconfigured is returned by Validate.
var ErrMisconfigured = errors.New("task service misconfigured")

// Validate reports a Service that lacks a dependency.
func (s *Service) Validate() error {
	switch {
	case s.Stacks == nil:
		return errors.Join(ErrMisconfigured, errors.New("no stacks"))
	case s.Store == nil, s.Policy == nil, s.Runner == nil, s.Directory == nil, s.Chat == nil:
		return errors.Join(ErrMisconfigured, errors.New("a dependency is missing"))
	case s.Masker == nil, s.Log == nil, s.Emoji == "", s.Owner == "":
		return errors.Join(ErrMisconfigured, errors.New("masker, log, emoji or owner missing"))
	}
	return nil
}

func (s *Service) approvalTimeout() time.Duration {
	if s.ApprovalTimeout > 0 {
		return s.ApprovalTimeout
	}
	return DefaultApprovalTimeout
}

func (s *Service) leaseTTL() time.Duration {
	if s.LeaseTTL > 0 {
		return s.LeaseTTL
	}
	return DefaultLeaseTTL
}
