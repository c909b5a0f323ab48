package task_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/mask"
)

func TestHandleRefusesSecretInCommand(t *testing.T) {
	tests := []struct {
		name, text, secret string
		wantAudited        string // the command as the audit log shows it
	}{
		{"password", "prod echo " + dbPassword, dbPassword, "echo ***"},
		{
			"token inside a word", "prod curl -H 'Authorization: Bearer " + apiToken + "' https://x", apiToken,
			"curl -H 'Authorization: Bearer ***' https://x",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)

			_, err := e.do(t, alice, "task", tt.text)

			uerr := userError(t, err, taskbot.EForbidden)
			if strings.Contains(err.Error(), tt.secret) {
				t.Errorf("Handle error %q shows the secret", err)
			}
			if !strings.Contains(uerr.Message, "contains the value of a secret taskbot keeps") {
				t.Errorf("Handle error %q does not say why", uerr.Message)
			}
			if jobs := e.runner.ran(); len(jobs) != 0 {
				t.Errorf("runner ran %d jobs, want none", len(jobs))
			}
			if events := e.chat.all(); len(events) != 0 {
				t.Errorf("chat got %d events, want none", len(events))
			}

			evs := e.store.events(t)
			wantTypes := []taskbot.EventType{taskbot.EventRequested, taskbot.EventRefused}
			if diff := cmp.Diff(eventTypes(evs), wantTypes); diff != "" {
				t.Errorf("audit event types mismatch (-got +want):\n%s", diff)
			}
			for _, ev := range evs {
				if strings.Contains(eventText(ev), tt.secret) {
					t.Errorf("audit event %s shows the secret: %+v", ev.Type, ev.Fields)
				}
			}
			if got := evs[0].Get("command"); got != tt.wantAudited {
				t.Errorf("audited command = %q, want %q", got, tt.wantAudited)
			}
			if strings.Contains(e.logs.String(), tt.secret) {
				t.Errorf("the log shows the secret:\n%s", e.logs.String())
			}

			// Task.Command promises never to hold a secret value: Redis must
			// not keep the refused command either.
			if dump := e.store.mr.Dump(); strings.Contains(dump, tt.secret) {
				t.Errorf("Redis keeps the secret of a refused command (shown masked):\n%s",
					mask.New(secrets...).String(dump))
			}
		})
	}
}

// TestHandleSecretGuessByNonWriter checks that someone who is not a writer
// cannot tell from the answer whether a guess is a secret's value: they are
// told they are not a writer, as for any other command.
func TestHandleSecretGuessByNonWriter(t *testing.T) {
	e := newEnv(t)

	_, err := e.do(t, eve, "task", "prod echo "+dbPassword)

	uerr := userError(t, err, taskbot.EForbidden)
	if !strings.Contains(uerr.Message, "You are not a writer of stack *prod*") {
		t.Errorf("Handle error %q, want the not-a-writer refusal", uerr.Message)
	}
	if jobs := e.runner.ran(); len(jobs) != 0 {
		t.Errorf("runner ran %d jobs, want none", len(jobs))
	}
}

func TestHandleMasksOutput(t *testing.T) {
	e := newEnv(t)
	// The token is split across two writes; the password goes to stderr,
	// which ends with what might be the start of the password: only the
	// flush at the end lets it out.
	e.runner.stdout = []string{"token is " + apiToken[:7], apiToken[7:] + " done\n"}
	e.runner.stderr = []string{"password " + dbPassword + "\n", "exit " + dbPassword[:3]}

	if _, err := e.do(t, alice, "task", "prod ./print-secrets.sh"); err != nil {
		t.Fatalf("Handle: %v", err)
	}

	want := "token is *** done\npassword ***\nexit " + dbPassword[:3]
	if diff := cmp.Diff(e.chat.output(), want); diff != "" {
		t.Errorf("chat output mismatch (-got +want):\n%s", diff)
	}

	// All output, and the close that flushes it, comes before the final
	// status.
	events := e.chat.all()
	var kinds []string
	for _, ev := range events {
		if len(kinds) == 0 || kinds[len(kinds)-1] != ev.Kind {
			kinds = append(kinds, ev.Kind)
		}
	}
	if diff := cmp.Diff(kinds, []string{"post", "output", "close", "update"}); diff != "" {
		t.Errorf("chat event order mismatch (-got +want):\n%s", diff)
	}
}

func TestHandleMasksAuditValues(t *testing.T) {
	// A careless policy quotes a secret in its reason.
	const src = "package taskbot.task\n\n" +
		"deny contains \"the password " + dbPassword + " expired\" if contains(input.command, \"apply\")\n" +
		"require_approval contains \"rotate " + apiToken + " first\" if contains(input.command, \"taint\")\n"
	tests := []struct {
		name, text string
		wantErr    bool
		wantShown  []string
		wantDecide []taskbot.Field
	}{
		{
			name: "deny", text: "prod terraform apply", wantErr: true,
			wantDecide: fields("decision", "deny", "reasons", "the password *** expired"),
		},
		{
			name: "require approval", text: "prod terraform taint x",
			wantShown:  []string{"post awaiting_approval"},
			wantDecide: fields("decision", "require_approval", "reasons", "rotate *** first"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.svc.Policy = writePolicy(t, src)

			_, err := e.do(t, alice, "task", tt.text)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Handle error = %v, want error %t", err, tt.wantErr)
			}

			evs := e.store.events(t)
			if len(evs) < 2 {
				t.Fatalf("audit events = %+v, want at least requested and decided", evs)
			}
			if diff := cmp.Diff(evs[1].Fields, tt.wantDecide); diff != "" {
				t.Errorf("decided fields mismatch (-got +want):\n%s", diff)
			}
			for _, ev := range evs {
				for _, s := range secrets {
					if strings.Contains(eventText(ev), s) {
						t.Errorf("audit event %s shows a secret: %+v", ev.Type, ev.Fields)
					}
				}
			}
			if diff := cmp.Diff(e.chat.shown(), tt.wantShown); diff != "" {
				t.Errorf("views mismatch (-got +want):\n%s", diff)
			}
			for _, v := range e.chat.views() {
				if diff := cmp.Diff(v.Reasons, []string{"rotate *** first"}); diff != "" {
					t.Errorf("view reasons mismatch (-got +want):\n%s", diff)
				}
			}
		})
	}
}
