package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/internal/redistest"
	"github.com/taskbot/taskbot/store"
)

// TestCheckExample checks the example configuration as the README tells
// operators to, with its policies and their Rego tests.
func TestCheckExample(t *testing.T) {
	out, err := run(t, map[string]string{"TASKBOT_DEMO_TOKEN": "not-a-real-token"},
		"check", "--config", "../examples/taskbot.yaml")
	if err != nil {
		t.Fatalf("check of the example: %v", err)
	}
	policies, err := filepath.Abs("../examples/policies")
	if err != nil {
		t.Fatal(err)
	}
	want := `ok: 2 stacks, policies "` + policies + `"` + "\n"
	if diff := cmp.Diff(out, want); diff != "" {
		t.Errorf("check output mismatch (-got +want):\n%s", diff)
	}
}

// TestCheckReportsEveryProblem checks that a broken configuration is
// reported whole, each problem with its key, and nothing says ok.
func TestCheckReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "taskbot.yaml", `stacks:
  dev:
    writers: [alice]
    timeout: soon
    secrets:
      TOKEN: {env: UNSET_TOKEN}
  help:
    image: busybox
    writers: [U0A]
  prod:
    image: busybox
    writers: [U0A]
    workdir: tmp
    colour: blue
`)

	out, err := run(t, nil, "check", "--config", path)
	if err == nil {
		t.Fatalf("check of a broken configuration succeeded:\n%s", out)
	}
	for _, want := range []string{
		"load config " + path,
		"stacks.dev.writers[0] (line 3): \"alice\" is not a Slack user or user-group ID",
		"stacks.dev.timeout (line 4): invalid duration \"soon\"",
		"stacks.dev.secrets.TOKEN",
		"stacks.dev.image: required",
		"stacks.help (line 7): name collides with the subcommand \"help\"",
		"stacks.prod.workdir (line 13): \"tmp\" is not an absolute path",
		"stacks.prod.colour (line 14): unknown key",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("check error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(out, "ok") {
		t.Errorf("check of a broken configuration printed %q", out)
	}
}

// TestCheckPolicies checks that check compiles the policies and runs
// their Rego tests.
func TestCheckPolicies(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string // in the error; "" for success
	}{
		{"passing tests", map[string]string{
			"task.rego":      "package taskbot.task\n\ndeny contains \"no\" if input.command == \"rm\"\n",
			"task_test.rego": "package taskbot.task\n\ntest_rm if deny[\"no\"] with input as {\"command\": \"rm\"}\n",
		}, ""},
		{"failing test", map[string]string{
			"task.rego":      "package taskbot.task\n\ndeny contains \"no\" if input.command == \"rm\"\n",
			"task_test.rego": "package taskbot.task\n\ntest_ls if deny[\"no\"] with input as {\"command\": \"ls\"}\n",
		}, "policy tests"},
		{"syntax error", map[string]string{
			"task.rego": "package taskbot.task\n\ndeny contains if {\n",
		}, "load policies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				writeFile(t, filepath.Join(dir, "policies"), name, content)
			}
			path := writeFile(t, dir, "taskbot.yaml",
				"stacks:\n  dev: {image: busybox, writers: [U0A]}\npolicies: ./policies\n")

			out, err := run(t, nil, "check", "--config", path)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("check = %v, want ok", err)
			case tt.want == "" && !strings.HasPrefix(out, "ok: 1 stacks"):
				t.Errorf("check printed %q, want ok", out)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("check = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// writeFile writes content to dir/name, creating dir, and returns the path.
func writeFile(tb testing.TB, dir, name, content string) string {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// TestAudit appends events to a real Redis and checks that audit prints
// the latest as JSON lines whose keys keep the stream's order.
func TestAudit(t *testing.T) {
	url := redistest.URL(t)
	st, err := store.Open(t.Context(), url, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	at := time.Date(2025, 3, 1, 12, 0, 0, 5, time.UTC)
	events := []taskbot.Event{
		{Type: taskbot.EventRequested, TaskID: "1", Stack: "prod", User: "U0ALICE", Time: at,
			Fields: []taskbot.Field{{Key: "command", Value: `echo "a" & <b>`}, {Key: "skip_init", Value: "false"}, {Key: "channel", Value: "C0TASKS"}}},
		{Type: taskbot.EventDecided, TaskID: "1", Stack: "prod", User: "U0ALICE", Time: at.Add(time.Second),
			Fields: []taskbot.Field{{Key: "decision", Value: "approval"}, {Key: "reasons", Value: "taint\nproduction"}}},
		{Type: taskbot.EventStackUnlocked, Stack: "dev", User: "U0BOB", Time: at.Add(2 * time.Second)},
	}
	ids := make([]string, len(events))
	for i, ev := range events {
		if ids[i], err = st.Append(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []int // indexes of the events printed
	}{
		{"all", nil, []string{"--redis-url", url}, []int{0, 1, 2}},
		{"latest two", nil, []string{"--redis-url", url, "-n", "2"}, []int{1, 2}},
		{"url from env", map[string]string{"REDIS_URL": url}, []string{"--limit", "1"}, []int{2}},
		{"other prefix", nil, []string{"--redis-url", url, "--prefix", "other:"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, tt.env, append([]string{"audit"}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			var want [][]taskbot.Field
			for _, i := range tt.want {
				want = append(want, auditFields(ids[i], events[i]))
			}
			if diff := cmp.Diff(parseJSONLines(t, out), want); diff != "" {
				t.Errorf("audit output mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

// auditFields is what audit prints for ev, in order.
func auditFields(id string, ev taskbot.Event) []taskbot.Field {
	fields := []taskbot.Field{{Key: "id", Value: id}, {Key: "type", Value: string(ev.Type)}, {Key: "task_id", Value: ev.TaskID},
		{Key: "stack", Value: ev.Stack}, {Key: "user", Value: ev.User}, {Key: "time", Value: ev.Time.Format(time.RFC3339Nano)}}
	return append(fields, ev.Fields...)
}

// parseJSONLines reads each line of out as a JSON object of strings, with
// its keys in the order written.
func parseJSONLines(tb testing.TB, out string) [][]taskbot.Field {
	tb.Helper()
	var objs [][]taskbot.Field
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			tb.Fatalf("line %q is not a JSON object", sc.Text())
		}
		var obj []taskbot.Field
		for dec.More() {
			k, errK := dec.Token()
			v, errV := dec.Token()
			key, okK := k.(string)
			value, okV := v.(string)
			if errK != nil || errV != nil || !okK || !okV {
				tb.Fatalf("line %q: not an object of strings at %v: %v", sc.Text(), k, errors.Join(errK, errV))
			}
			obj = append(obj, taskbot.Field{Key: key, Value: value})
		}
		objs = append(objs, obj)
	}
	return objs
}

// TestAuditNeedsRedis checks that audit without a Redis URL says which
// flag to set, and that a bad URL is reported without its password.
func TestAuditNeedsRedis(t *testing.T) {
	_, err := run(t, nil, "audit")
	if err == nil || !strings.HasPrefix(err.Error(), "--redis-url (REDIS_URL): required") {
		t.Errorf("audit without a URL = %v, want it to ask for --redis-url (REDIS_URL)", err)
	}
	_, err = run(t, nil, "audit", "-n", "-1")
	if err == nil || !strings.HasPrefix(err.Error(), "--limit (-n): must be at least 1") {
		t.Errorf("audit -n -1 = %v, want it refused", err)
	}

	_, err = run(t, nil, "audit", "--redis-url", "redis://:hunter2pw@127.0.0.1:1/0?max_retries=-1")
	if err == nil {
		t.Fatal("audit against a closed port succeeded")
	}
	if strings.Contains(err.Error(), "hunter2pw") {
		t.Errorf("audit error %q shows the Redis password", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("audit error %q does not say which Redis", err)
	}
}
