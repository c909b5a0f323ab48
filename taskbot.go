// Package taskbot holds the domain types that taskbot's packages share: stacks,
// tasks, locks, audit events and the error type that reaches users.
//
// The packages that wrap a dependency (bot for Slack, runner for Docker, policy
// for OPA, store for Redis) speak in these types, so that none of them needs
// to import another.
package taskbot

import (
	"regexp"
	"strconv"
	"time"
)

// Stack is one configured target that tasks run against.
type Stack struct {
	Name    string
	Image   string
	Init    string            // optional command run before every task unless skipped
	Workdir string            // optional working directory inside the container
	Writers []string          // Slack user IDs (U…, W…) and user-group IDs (S…)
	Labels  map[string]string // visible to policies
	Env     map[string]string
	Secrets map[string]Secret // injected as environment variables, masked everywhere
	Timeout time.Duration
}

// StackNameRule says which names ValidStackName accepts, for messages that
// ask for a better one.
const StackNameRule = "up to 63 letters, digits, '.', '_' and '-', starting with a letter or digit"

// stackName keeps stack names short and free of anything a command line,
// a Redis key or Slack markup would read specially.
var stackName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// ValidStackName reports whether name may name a stack. The configuration
// and the command parser share it, so that every configured stack can be
// named in a command.
func ValidStackName(name string) bool { return stackName.MatchString(name) }

// Secret is a secret value. It formats as [Redacted] so that printing or
// logging a struct that holds one cannot leak it; Reveal returns the value.
type Secret string

// Redacted is what a Secret prints as.
const Redacted = "[REDACTED]"

// Reveal returns the secret value. Call it only to hand the value to the
// container or to the masker.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer, which %#v uses.
func (Secret) GoString() string { return Redacted }

// MarshalText implements encoding.TextMarshaler, which JSON and YAML use.
func (Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// State is where a task is in its lifecycle.
type State string

// The states of a task. A task is created pending while it is checked, may
// await approval, then runs, and ends finished, failed or refused.
const (
	StatePending          State = "pending"
	StateAwaitingApproval State = "awaiting_approval"
	StateRunning          State = "running"
	StateFinished         State = "finished" // exit code 0
	StateFailed           State = "failed"   // non-zero exit code, or the runner failed
	StateRefused          State = "refused"  // refused after it was posted (e.g. locked on approval)
)

// Done reports whether the state is final.
func (s State) Done() bool {
	return s == StateFinished || s == StateFailed || s == StateRefused
}

// Task is one request to run a command on a stack.
type Task struct {
	ID        string // assigned by the store; decimal, increasing
	Stack     string
	User      string // Slack user ID of the requester
	Channel   string // Slack channel ID the task was requested in
	Command   string // as typed; never holds a secret value (such commands are refused)
	SkipInit  bool
	State     State
	ExitCode  int    // meaningful once State is finished or failed
	Detail    string // why it failed or was refused, when not just an exit code
	MessageTS string // ts of the task's message (the thread root), once posted
	Created   time.Time
	Updated   time.Time
}

// Lock is a hold on a stack: a manual /lock, or the lease of a running task.
type Lock struct {
	Stack  string
	Kind   LockKind
	User   string // Slack user ID of the holder
	TaskID string // for LockTask: the running task
	Reason string // for LockManual: what the holder said
	Since  time.Time
}

// LockKind says what holds a stack.
type LockKind string

// The kinds of lock.
const (
	LockManual LockKind = "manual" // taken with /lock; only its holder may run tasks
	LockTask   LockKind = "task"   // held by a running task; one task per stack
)

// Lease is a running task's hold on its stack. Token is a fencing token: it
// grows with every lease taken on the stack, so a holder whose lease expired
// cannot renew or release the lease of the next holder.
type Lease struct {
	Stack  string
	TaskID string
	User   string
	Token  int64
}

// LockedError reports that a stack is held by someone else.
type LockedError struct {
	Lock Lock
}

func (e *LockedError) Error() string {
	if e.Lock.Kind == LockTask {
		return "stack " + strconv.Quote(e.Lock.Stack) + " is busy with task " + e.Lock.TaskID
	}
	return "stack " + strconv.Quote(e.Lock.Stack) + " is locked by " + e.Lock.User
}

// Event is one entry of the audit log. Type, TaskID, Stack, User and Time are
// written first, in that order, then Fields in the order given.
type Event struct {
	ID     string // assigned by the store when read back
	Type   EventType
	TaskID string
	Stack  string
	User   string // Slack user ID of whoever caused the event
	Time   time.Time
	Fields []Field
}

// Field is one extra key and value of an audit event.
type Field struct {
	Key, Value string
}

// Get returns the value of the event's field key, or "".
func (e Event) Get(key string) string {
	for _, f := range e.Fields {
		if f.Key == key {
			return f.Value
		}
	}
	return ""
}

// EventType names what an audit event records.
type EventType string

// The audit event types.
const (
	EventRequested       EventType = "requested"        // command, skip_init, channel
	EventRefused         EventType = "refused"          // reason
	EventDecided         EventType = "decided"          // decision, reasons
	EventApprovalCounted EventType = "approval_counted" // approver, approvals, needed
	EventApprovalIgnored EventType = "approval_ignored" // approver, reason
	EventLockAcquired    EventType = "lock_acquired"    // kind, token
	EventLockReleased    EventType = "lock_released"    // kind, token
	EventStarted         EventType = "started"          // image
	EventFinished        EventType = "finished"         // exit_code
	EventFailed          EventType = "failed"           // exit_code, reason
	EventStackLocked     EventType = "stack_locked"     // reason
	EventStackUnlocked   EventType = "stack_unlocked"   // (no extra fields)
)
