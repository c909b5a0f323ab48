package task_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/task"
)

// taint is a command the example policies hold for approval.
const taint = "prod terraform taint aws_instance.web"

// requestApproval has alice request a task that needs approval and returns
// the reaction that approves it: bob's, on the task's message.
func requestApproval(tb testing.TB, e *env) task.Reaction {
	tb.Helper()
	if _, err := e.do(tb, alice, "task", taint); err != nil {
		tb.Fatalf("Handle: %v", err)
	}
	events := e.chat.all()
	if len(events) == 0 {
		tb.Fatal("the task awaiting approval was not posted")
	}
	last := events[len(events)-1]
	if last.Kind != "post" || last.View.Task.State != taskbot.StateAwaitingApproval {
		tb.Fatalf("last chat event = %+v, want the post of a task awaiting approval", last)
	}
	return task.Reaction{User: bob, Channel: channel, TS: last.TS, Emoji: emoji}
}

func TestApprovalAwaited(t *testing.T) {
	e := newEnv(t)

	reply, err := e.do(t, alice, "task", taint)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if reply != (task.Reply{}) {
		t.Errorf("Handle reply = %+v, want none", reply)
	}

	awaiting := taskbot.Task{
		ID: "1", Stack: "prod", User: alice, Channel: channel,
		Command: "terraform taint aws_instance.web", State: taskbot.StateAwaitingApproval,
	}
	want := []task.View{{Task: awaiting, Emoji: emoji, Reasons: []string{taintReason}}}
	if diff := cmp.Diff(e.chat.views(), want, ignoreTaskTimes); diff != "" {
		t.Errorf("views mismatch (-got +want):\n%s", diff)
	}
	if jobs := e.runner.ran(); len(jobs) != 0 {
		t.Errorf("runner ran %+v before approval", jobs)
	}
	if locks, err := e.store.Locks(t.Context()); err != nil || len(locks) != 0 {
		t.Errorf("Locks() = %+v, %v; want none while the task waits", locks, err)
	}
	awaiting.MessageTS = "1700000000.000001"
	if diff := cmp.Diff(e.store.task(t, "1"), &awaiting, ignoreTaskTimes); diff != "" {
		t.Errorf("stored task mismatch (-got +want):\n%s", diff)
	}
	wantEvents := []taskbot.Event{
		{Type: taskbot.EventRequested, TaskID: "1", Stack: "prod", User: alice,
			Fields: fields("command", awaiting.Command, "skip_init", "false", "channel", channel)},
		{Type: taskbot.EventDecided, TaskID: "1", Stack: "prod", User: alice,
			Fields: fields("decision", "require_approval", "reasons", taintReason)},
	}
	if diff := cmp.Diff(e.store.events(t), wantEvents, ignoreEventIDTime); diff != "" {
		t.Errorf("audit events mismatch (-got +want):\n%s", diff)
	}
}

func TestReactApproves(t *testing.T) {
	for _, approver := range []string{bob, dave} {
		t.Run(approver, func(t *testing.T) {
			e := newEnv(t)
			r := requestApproval(t, e)
			r.User = approver

			if err := e.svc.React(t.Context(), r); err != nil {
				t.Fatalf("React: %v", err)
			}

			if jobs := e.runner.ran(); len(jobs) != 1 || jobs[0].TaskID != "1" {
				t.Errorf("runner ran %+v, want task 1 once", jobs)
			}
			var got [][]string
			for _, v := range e.chat.views() {
				got = append(got, append([]string{string(v.Task.State)}, v.Approvers...))
			}
			want := [][]string{
				{string(taskbot.StateAwaitingApproval)},
				{string(taskbot.StateRunning), approver},
				{string(taskbot.StateFinished), approver},
			}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("views (state, approvers…) mismatch (-got +want):\n%s", diff)
			}

			evs := e.store.events(t)
			wantTypes := []taskbot.EventType{
				taskbot.EventRequested, taskbot.EventDecided, taskbot.EventApprovalCounted,
				taskbot.EventDecided, // checked again once approved
				taskbot.EventLockAcquired, taskbot.EventStarted, taskbot.EventFinished, taskbot.EventLockReleased,
			}
			if diff := cmp.Diff(eventTypes(evs), wantTypes); diff != "" {
				t.Fatalf("audit event types mismatch (-got +want):\n%s", diff)
			}
			wantCounted := taskbot.Event{Type: taskbot.EventApprovalCounted, TaskID: "1", Stack: "prod",
				User: approver, Fields: fields("approver", approver, "approvals", "1", "needed", "1")}
			if diff := cmp.Diff(evs[2], wantCounted, ignoreEventIDTime); diff != "" {
				t.Errorf("approval_counted event mismatch (-got +want):\n%s", diff)
			}
			if leases := e.store.leases(t); len(leases) != 0 {
				t.Errorf("leases after the task = %+v, want none", leases)
			}
		})
	}
}

func TestReactIgnored(t *testing.T) {
	// ignored is what an approval by user that does not count leaves: a
	// note to them and an audit event, both saying why.
	ignored := func(user, reason string) ([]chatEvent, []taskbot.Event) {
		note := "Your :white_check_mark: on task 1 did not count as an approval: " + reason + "."
		ev := taskbot.Event{Type: taskbot.EventApprovalIgnored, TaskID: "1", Stack: "prod", User: user,
			Fields: fields("approver", user, "reason", reason)}
		return []chatEvent{{Kind: "notify", User: user, Text: note}}, []taskbot.Event{ev}
	}
	requesterNote, requesterEvents := ignored(alice, "requesters cannot approve their own tasks")
	readerNote, readerEvents := ignored(carol, "only writers of stack prod can approve its tasks")

	tests := []struct {
		name       string
		change     func(r *task.Reaction)
		wantNotify []chatEvent
		wantEvents []taskbot.Event
	}{
		{
			name:       "requester",
			change:     func(r *task.Reaction) { r.User = alice },
			wantNotify: requesterNote,
			wantEvents: requesterEvents,
		},
		{
			name:       "not a writer",
			change:     func(r *task.Reaction) { r.User = carol },
			wantNotify: readerNote,
			wantEvents: readerEvents,
		},
		{
			name:   "another emoji",
			change: func(r *task.Reaction) { r.Emoji = "thumbsup" },
		},
		{
			name:   "message of no task",
			change: func(r *task.Reaction) { r.TS = "1700000000.999999" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := requestApproval(t, e)
			tt.change(&r)
			chatBefore, eventsBefore := len(e.chat.all()), len(e.store.events(t))

			if err := e.svc.React(t.Context(), r); err != nil {
				t.Fatalf("React: %v", err)
			}

			if diff := cmp.Diff(e.chat.all()[chatBefore:], tt.wantNotify, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("chat events mismatch (-got +want):\n%s", diff)
			}
			gotEvents := e.store.events(t)[eventsBefore:]
			if diff := cmp.Diff(gotEvents, tt.wantEvents, ignoreEventIDTime, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("audit events mismatch (-got +want):\n%s", diff)
			}
			if jobs := e.runner.ran(); len(jobs) != 0 {
				t.Errorf("runner ran %+v, want nothing", jobs)
			}
			if got := e.store.task(t, "1").State; got != taskbot.StateAwaitingApproval {
				t.Errorf("task state = %s, want %s", got, taskbot.StateAwaitingApproval)
			}
		})
	}
}

func TestReactOnFinishedTask(t *testing.T) {
	e := newEnv(t)
	if _, err := e.do(t, alice, "task", "prod terraform plan"); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	chatBefore, eventsBefore := len(e.chat.all()), len(e.store.events(t))

	r := task.Reaction{User: bob, Channel: channel, TS: "1700000000.000001", Emoji: emoji}
	if err := e.svc.React(t.Context(), r); err != nil {
		t.Fatalf("React: %v", err)
	}

	if got := len(e.chat.all()) - chatBefore; got != 0 {
		t.Errorf("React on a finished task showed %d things, want none", got)
	}
	if got := len(e.store.events(t)) - eventsBefore; got != 0 {
		t.Errorf("React on a finished task audited %d events, want none", got)
	}
	if jobs := e.runner.ran(); len(jobs) != 1 {
		t.Errorf("runner ran %d jobs, want the task's one", len(jobs))
	}
}

// TestReactTwoReplicas delivers the approving reaction to two replicas
// sharing one store at once, as when both receive it: the task runs once.
func TestReactTwoReplicas(t *testing.T) {
	e := newEnv(t)
	other := &fakeRunner{}
	replica := e.replica(t, other)

	const rounds = 3
	for round := range rounds {
		r := requestApproval(t, e)

		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, svc := range []*task.Service{e.svc, replica} {
			wg.Go(func() { errs[i] = svc.React(context.Background(), r) })
		}
		wg.Wait()

		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: React on replica %d: %v", round, i, err)
			}
		}
	}

	var ran []string
	for _, j := range append(e.runner.ran(), other.ran()...) {
		ran = append(ran, j.TaskID)
	}
	bySort := cmpopts.SortSlices(func(a, b string) bool { return a < b })
	if diff := cmp.Diff(ran, []string{"1", "2", "3"}, bySort); diff != "" {
		t.Errorf("tasks run by both replicas mismatch (-got +want):\n%s", diff)
	}
	counts := map[taskbot.EventType]int{}
	for _, ev := range e.store.events(t) {
		counts[ev.Type]++
	}
	once := []taskbot.EventType{taskbot.EventApprovalCounted, taskbot.EventLockAcquired,
		taskbot.EventStarted, taskbot.EventFinished}
	for _, typ := range once {
		if counts[typ] != rounds {
			t.Errorf("%d %s events, want %d", counts[typ], typ, rounds)
		}
	}
	for id := range rounds {
		if st := e.store.task(t, fmt.Sprint(id+1)).State; st != taskbot.StateFinished {
			t.Errorf("task %d state = %s, want %s", id+1, st, taskbot.StateFinished)
		}
	}
}

// TestReactStackBusy approves a task while another task holds its stack:
// the approved task is refused on its message, for everyone to see.
func TestReactStackBusy(t *testing.T) {
	e := newEnv(t)
	e.runner = newBlockingRunner(t)
	e.svc.Runner = e.runner
	r := requestApproval(t, e)

	busy := e.doAsync(t, bob, "task", "prod terraform plan")
	e.runner.waitStarted(t)

	if err := e.svc.React(t.Context(), r); err != nil {
		t.Fatalf("React: %v", err)
	}

	detail := "Stack *prod* is busy: task 2 by <@UBOB> is running. Try again when it has finished."
	var refused *task.View
	for _, v := range e.chat.views() {
		if v.Task.ID == "1" {
			refused = &v
		}
	}
	if refused == nil {
		t.Fatal("task 1 was never shown")
	}
	want := task.View{
		Task: taskbot.Task{
			ID: "1", Stack: "prod", User: alice, Channel: channel, Command: "terraform taint aws_instance.web",
			State: taskbot.StateRefused, Detail: detail, MessageTS: r.TS,
		},
		Emoji:     emoji,
		Approvers: []string{bob},
	}
	if diff := cmp.Diff(*refused, want, ignoreTaskTimes); diff != "" {
		t.Errorf("last view of the approved task mismatch (-got +want):\n%s", diff)
	}
	if st := e.store.task(t, "1"); st.State != taskbot.StateRefused || st.Detail != detail {
		t.Errorf("stored task = %s %q, want %s %q", st.State, st.Detail, taskbot.StateRefused, detail)
	}
	wantTypes := []taskbot.EventType{
		taskbot.EventRequested, taskbot.EventDecided, taskbot.EventApprovalCounted,
		taskbot.EventDecided, taskbot.EventRefused,
	}
	if diff := cmp.Diff(eventTypes(e.store.taskEvents(t, "1")), wantTypes); diff != "" {
		t.Errorf("audit event types of the approved task mismatch (-got +want):\n%s", diff)
	}

	e.runner.unblock()
	if err := receive(t, busy); err != nil {
		t.Fatalf("Handle of the busy task: %v", err)
	}
	if jobs := e.runner.ran(); len(jobs) != 1 || jobs[0].TaskID != "2" {
		t.Errorf("runner ran %+v, want only task 2", jobs)
	}
}

// TestApprovalAuditFailure checks that an approval that cannot be audited
// does not count, and its giver is told; one that counted before, and was
// audited then, still does.
func TestApprovalAuditFailure(t *testing.T) {
	tests := []struct {
		name          string
		earlier       bool // bob's approval was recorded before
		wantErr       error
		wantApprovers []string
		wantNotes     int // notes to bob
		wantState     taskbot.State
		wantRuns      int
	}{
		{name: "new approval is withdrawn", wantErr: errAudit, wantNotes: 1,
			wantState: taskbot.StateAwaitingApproval},
		{name: "earlier approval, not audited again, starts the task", earlier: true,
			wantApprovers: []string{bob}, wantState: taskbot.StateFinished, wantRuns: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := requestApproval(t, e)
			if tt.earlier {
				if _, _, err := e.store.AddApproval(t.Context(), "1", bob); err != nil {
					t.Fatal(err)
				}
			}
			e.store.failAppend(taskbot.EventApprovalCounted, errAudit)

			if err := e.svc.React(t.Context(), r); !errors.Is(err, tt.wantErr) {
				t.Errorf("React error = %v, want %v", err, tt.wantErr)
			}

			approvers, err := e.store.Approvals(t.Context(), "1")
			if err != nil {
				t.Fatalf("Approvals: %v", err)
			}
			if diff := cmp.Diff(approvers, tt.wantApprovers, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("approvals mismatch (-got +want):\n%s", diff)
			}
			if jobs := e.runner.ran(); len(jobs) != tt.wantRuns {
				t.Errorf("runner ran %+v, want %d jobs", jobs, tt.wantRuns)
			}
			if got := e.store.task(t, "1").State; got != tt.wantState {
				t.Errorf("task state = %s, want %s", got, tt.wantState)
			}
			var notes []string
			for _, ev := range e.chat.all() {
				if ev.Kind == "notify" && ev.User == bob && strings.Contains(ev.Text, "could not be recorded") {
					notes = append(notes, ev.Text)
				}
			}
			if len(notes) != tt.wantNotes {
				t.Errorf("notes to bob = %q, want %d saying it could not be recorded", notes, tt.wantNotes)
			}
		})
	}
}

// TestApprovedRecheckFails checks that an approved task that taskbot could
// not check again shows it was refused, rather than still awaiting
// approval, and runs nothing.
func TestApprovedRecheckFails(t *testing.T) {
	e := newEnv(t)
	r := requestApproval(t, e)
	e.store.failAppend(taskbot.EventDecided, errAudit)

	if err := e.svc.React(t.Context(), r); !errors.Is(err, errAudit) {
		t.Errorf("React error = %v, want %v", err, errAudit)
	}

	views := e.chat.views()
	last := views[len(views)-1].Task
	if last.State != taskbot.StateRefused || !strings.Contains(last.Detail, "internal error") {
		t.Errorf("the task's message shows %s (%q), want refused for an internal error", last.State, last.Detail)
	}
	if jobs := e.runner.ran(); len(jobs) != 0 {
		t.Errorf("runner ran %+v, want nothing", jobs)
	}
}

// TestApprovedTaskMovedOn checks that an approved task that something else
// moved on while it was being started is not run, and that its message is
// left to whatever moved it on.
func TestApprovedTaskMovedOn(t *testing.T) {
	e := newEnv(t)
	r := requestApproval(t, e)
	e.svc.Runner = &movingRunner{fakeRunner: e.runner, store: e.store}
	shown := len(e.chat.all())

	if err := e.svc.React(t.Context(), r); err == nil {
		t.Errorf("React error = nil, want the internal error of a task moved on")
	}

	if jobs := e.runner.ran(); len(jobs) != 0 {
		t.Errorf("runner ran %+v, want nothing", jobs)
	}
	if events := e.chat.all()[shown:]; len(events) != 0 {
		t.Errorf("chat got %+v after the approval, want nothing", events)
	}
	if st := e.store.task(t, "1"); st.State != taskbot.StateFailed || st.Detail != "failed elsewhere" {
		t.Errorf("stored task = %s %q, want it left failed %q", st.State, st.Detail, "failed elsewhere")
	}
}
