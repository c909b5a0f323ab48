package bot

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/slack-go/slack"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/task"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// slackTextLimit is the most characters Slack takes in the text of a
// section or of a context element.
const slackTextLimit = 3000

// baseTask is the task the rendering cases vary.
func baseTask() taskbot.Task {
	return taskbot.Task{ID: "42", Stack: "prod", User: "U0ALICE", Channel: "C0TASKS",
		Command: "terraform plan", State: taskbot.StateRunning, MessageTS: "1700000000.000100"}
}

// renderCases are the task messages kept as golden files, by file name.
func renderCases() []struct {
	name string
	view task.View
} {
	with := func(f func(t *taskbot.Task)) taskbot.Task {
		t := baseTask()
		f(&t)
		return t
	}
	return []struct {
		name string
		view task.View
	}{
		{"pending", task.View{Task: with(func(t *taskbot.Task) { t.State = taskbot.StatePending })}},
		{"running", task.View{Task: baseTask()}},
		{"finished", task.View{Task: with(func(t *taskbot.Task) { t.State = taskbot.StateFinished })}},
		{"failed_exit_3_detail", task.View{Task: with(func(t *taskbot.Task) {
			t.State, t.ExitCode, t.Detail = taskbot.StateFailed, 3, "timed out after 5m0s"
		})}},
		{"failed_init", task.View{Task: with(func(t *taskbot.Task) {
			t.State, t.ExitCode, t.Detail = taskbot.StateFailed, 1, "the init phase failed"
		})}},
		{"failed_no_exit_code", task.View{Task: with(func(t *taskbot.Task) {
			t.State, t.Detail = taskbot.StateFailed, "taskbot could not run the container"
		})}},
		{"refused_detail", task.View{Task: with(func(t *taskbot.Task) {
			// Details are mrkdwn, with people's text escaped by the task lifecycle.
			t.State, t.Detail = taskbot.StateRefused, "Stack *prod* is locked by <@U0BOB>: &lt;migration&gt; &amp; more"
		})}},
		{"awaiting_approval", task.View{
			Task: with(func(t *taskbot.Task) {
				t.State, t.Command = taskbot.StateAwaitingApproval, "terraform taint aws_instance.web"
			}),
			Reasons: []string{"taint on a production stack", "commands with <redirects> & pipes need review"},
			Emoji:   "white_check_mark",
		}},
		{"approved_running", task.View{
			Task:      with(func(t *taskbot.Task) { t.Command = "terraform taint aws_instance.web" }),
			Approvers: []string{"U0BOB", "U0CAROL"},
		}},
		{"skip_init", task.View{Task: with(func(t *taskbot.Task) {
			t.SkipInit, t.State = true, taskbot.StateFinished
		})}},
		{"special_characters", task.View{Task: with(func(t *taskbot.Task) {
			t.Command = "cat <in.txt | grep -v '&amp;' > out.txt && printf '```done```' <@U0BOB> <!channel>"
		})}},
		{"long_command", task.View{Task: with(func(t *taskbot.Task) {
			t.Command = "echo " + strings.Repeat("module.network.aws_subnet.private[0] ", 80)
		})}},
	}
}

// TestRenderTaskGolden compares the rendered task messages with
// testdata/<name>.golden; go test ./bot -update rewrites them.
func TestRenderTaskGolden(t *testing.T) {
	for _, tt := range renderCases() {
		t.Run(tt.name, func(t *testing.T) {
			text, blocks := renderTask(tt.view)
			got := marshalMessage(t, text, blocks)

			path := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden file (run go test ./bot -update to create it): %v", err)
			}
			if diff := cmp.Diff(string(got), string(want)); diff != "" {
				t.Errorf("renderTask(%s) mismatch (-got +want):\n%s", tt.name, diff)
			}
		})
	}
}

// marshalMessage renders a message as indented JSON, with &, < and >
// readable.
func marshalMessage(tb testing.TB, text string, blocks []slack.Block) []byte {
	tb.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	msg := struct {
		Text   string        `json:"text"`
		Blocks []slack.Block `json:"blocks"`
	}{text, blocks}
	if err := enc.Encode(msg); err != nil {
		tb.Fatalf("encode message: %v", err)
	}
	return unescapeHTML(buf.Bytes())
}

// htmlEscapes are the escapes encoding/json writes for &, < and >. slack-go
// marshals some blocks itself, so SetEscapeHTML(false) cannot stop them.
var htmlEscapes = map[string]byte{`\u0026`: '&', `\u003c`: '<', `\u003e`: '>'}

// unescapeHTML turns the escapes of &, < and > in JSON back into the
// characters, stepping over every other escape so that an escaped
// backslash followed by "u003c" stays as it is.
func unescapeHTML(js []byte) []byte {
	var out []byte
	for i := 0; i < len(js); i++ {
		if js[i] != '\\' {
			out = append(out, js[i])
			continue
		}
		if i+6 <= len(js) {
			if c, ok := htmlEscapes[string(js[i:i+6])]; ok {
				out = append(out, c)
				i += 5
				continue
			}
		}
		out = append(out, js[i], js[i+1])
		i++
	}
	return out
}

// TestRenderTaskFitsSlackLimits checks that no text of a task message
// passes Slack's limit, even for a long command made of characters that
// escaping lengthens: Slack refuses such a message with invalid_blocks, and
// the task would never be shown.
func TestRenderTaskFitsSlackLimits(t *testing.T) {
	commands := map[string]string{
		"long plain":       strings.Repeat("x", 10000),
		"long ampersands":  strings.Repeat("&", 2000),
		"long angles":      strings.Repeat("a<b>", 1000),
		"long backticks":   strings.Repeat("`", 3000),
		"long multi-byte":  strings.Repeat("日本語", 2000),
		"escapes at limit": strings.Repeat("x", maxCommandShown-1) + "&&&&",
	}
	for name, command := range commands {
		v := task.View{Task: baseTask()}
		v.Task.Command = command
		_, blocks := renderTask(v)
		for i, text := range blockTexts(t, blocks) {
			if n := utf8.RuneCountInString(text); n > slackTextLimit {
				t.Errorf("renderTask(%s): text %d of the blocks has %d characters, Slack takes %d",
					name, i, n, slackTextLimit)
			}
		}
	}
}

// blockTexts returns the text of every section and context element.
func blockTexts(tb testing.TB, blocks []slack.Block) []string {
	tb.Helper()
	var texts []string
	for _, b := range blocks {
		switch b := b.(type) {
		case *slack.SectionBlock:
			texts = append(texts, b.Text.Text)
		case *slack.ContextBlock:
			for _, e := range b.ContextElements.Elements {
				if o, ok := e.(*slack.TextBlockObject); ok {
					texts = append(texts, o.Text)
				}
			}
		default:
			tb.Fatalf("unexpected block %T", b)
		}
	}
	return texts
}

// TestFenceKeepsCodeBlockClosed checks that no run of backticks in the
// text can end the code block early, and that removing the zero-width
// spaces and the escaping gives the text back.
func TestFenceKeepsCodeBlockClosed(t *testing.T) {
	for _, text := range []string{
		"", "plain", "```", "a```b", "````", "`````", "``````", "x ```` y ``` z",
		"``", "a & b < c > d", "printf '```sh\\necho &amp;\\n```'", "x`", "`x", "`",
	} {
		got := fence(text)
		inner, ok := strings.CutPrefix(got, "```")
		inner, ok2 := strings.CutSuffix(inner, "```")
		if !ok || !ok2 {
			t.Errorf("fence(%q) = %q, want it inside ``` and ```", text, got)
			continue
		}
		if strings.Contains(inner, "``") || strings.HasPrefix(inner, "`") || strings.HasSuffix(inner, "`") {
			t.Errorf("fence(%q) = %q: backticks inside run together or into the fences", text, got)
		}
		if back := unfence(inner); back != text {
			t.Errorf("fence(%q) = %q, which reads back as %q", text, got, back)
		}
	}
}

// unfence undoes what fence does to the text inside the fences.
func unfence(inner string) string {
	return unescaper.Replace(strings.ReplaceAll(inner, "\u200b", ""))
}

// A policy reason or a refusal may quote a long command; no block may pass
// Slack's 3,000 characters however long they are.
func TestRenderTaskFitsLongReasons(t *testing.T) {
	long := strings.Repeat("a&b ", 1000)
	v := task.View{
		Task:    taskbot.Task{ID: "7", Stack: "prod", User: "U0ALICE", Channel: "C1", Command: "x", State: taskbot.StateAwaitingApproval, Detail: long},
		Reasons: []string{long},
		Emoji:   "white_check_mark",
	}
	_, blocks := renderTask(v)
	raw, err := json.Marshal(blocks)
	if err != nil {
		t.Fatal(err)
	}
	var parsed []struct {
		Text     *struct{ Text string }  `json:"text"`
		Elements []struct{ Text string } `json:"elements"`
	}
	if err := json.Unmarshal(raw, &parsed); err != nil {
		t.Fatal(err)
	}
	for i, b := range parsed {
		texts := []string{}
		if b.Text != nil {
			texts = append(texts, b.Text.Text)
		}
		for _, e := range b.Elements {
			texts = append(texts, e.Text)
		}
		for _, text := range texts {
			if n := utf8.RuneCountInString(text); n > 3000 {
				t.Errorf("block %d has a text of %d characters, Slack takes 3000", i, n)
			}
		}
	}
}
