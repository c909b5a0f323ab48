package runner_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/client"
	"github.com/taskbot/taskbot/internal/dockertest"
	"github.com/taskbot/taskbot/runner"
)

// output is what a run wrote to stdout and stderr.
type output struct {
	Stdout, Stderr string
}

func TestRun(t *testing.T) {
	d := newDocker(t)
	image := dockertest.BusyboxImage(t)

	tests := []struct {
		name string
		job  runner.Job
		out  output
		want runner.Result
	}{
		{
			name: "stdout and stderr separated",
			job:  runner.Job{Command: "echo out; echo err >&2; echo out2"},
			out:  output{Stdout: "out\nout2\n", Stderr: "err\n"},
			want: runner.Result{ExitCode: 0, Phase: runner.PhasePerform},
		},
		{
			name: "exit code",
			job:  runner.Job{Command: "echo failing; exit 7"},
			out:  output{Stdout: "failing\n"},
			want: runner.Result{ExitCode: 7, Phase: runner.PhasePerform},
		},
		{
			name: "init changes visible to command",
			job: runner.Job{
				Init: "echo init; echo written-by-init > f", Command: "cat f", Workdir: "/work",
			},
			out:  output{Stdout: "init\nwritten-by-init\n"},
			want: runner.Result{ExitCode: 0, Phase: runner.PhasePerform},
		},
		{
			name: "init fails",
			job:  runner.Job{Init: "echo init; exit 3", Command: "echo command ran"},
			out:  output{Stdout: "init\n"},
			want: runner.Result{ExitCode: 3, Phase: runner.PhaseInit},
		},
		{
			name: "command fails after init",
			job:  runner.Job{Init: "echo init", Command: "exit 4"},
			out:  output{Stdout: "init\n"},
			want: runner.Result{ExitCode: 4, Phase: runner.PhasePerform},
		},
		{
			name: "no init",
			job:  runner.Job{Command: "echo only command"},
			out:  output{Stdout: "only command\n"},
			want: runner.Result{ExitCode: 0, Phase: runner.PhasePerform},
		},
		{
			name: "env reaches command but carriers do not",
			job: runner.Job{
				Env:     []string{"GREETING=hello world", "EMPTY="},
				Init:    "true",
				Command: `echo "$GREETING" "${EMPTY-unset}" "${TASKBOT_COMMAND-unset}" "${TASKBOT_MARKER-unset}"`,
			},
			out:  output{Stdout: "hello world  unset unset\n"},
			want: runner.Result{ExitCode: 0, Phase: runner.PhasePerform},
		},
		{
			name: "command and init that start with a dash",
			job:  runner.Job{Init: "-x 2>/dev/null; echo init", Command: "--version 2>/dev/null; echo cmd"},
			out:  output{Stdout: "init\ncmd\n"},
			want: runner.Result{ExitCode: 0, Phase: runner.PhasePerform},
		},
		{
			name: "workdir",
			job:  runner.Job{Workdir: "/tmp/work", Command: "pwd"},
			out:  output{Stdout: "/tmp/work\n"},
			want: runner.Result{ExitCode: 0, Phase: runner.PhasePerform},
		},
		{
			name: "shell text passed verbatim",
			job:  runner.Job{Init: `echo "it's"`, Command: `echo '"$HOME"' "a;b" && false`},
			out:  output{Stdout: "it's\n\"$HOME\" a;b\n"},
			want: runner.Result{ExitCode: 1, Phase: runner.PhasePerform},
		},
		{
			name: "all output copied",
			job:  runner.Job{Command: "seq 1 20000; seq 1 5000 >&2"},
			out:  output{Stdout: seq(20000), Stderr: seq(5000)},
			want: runner.Result{ExitCode: 0, Phase: runner.PhasePerform},
		},
		{
			name: "timeout in command",
			job:  runner.Job{Command: "echo started; sleep 30", Timeout: time.Second},
			out:  output{Stdout: "started\n"},
			want: runner.Result{ExitCode: 137, Phase: runner.PhasePerform, TimedOut: true},
		},
		{
			name: "timeout in init",
			job:  runner.Job{Init: "sleep 30", Command: "echo command ran", Timeout: time.Second},
			want: runner.Result{ExitCode: 137, Phase: runner.PhaseInit, TimedOut: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := tt.job
			job.TaskID, job.Image = taskID(t), image

			var stdout, stderr bytes.Buffer
			got, err := d.Run(t.Context(), job, &stdout, &stderr)
			if err != nil {
				t.Fatalf("Run(%q) error: %v", job.Command, err)
			}

			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("Run(%q) result mismatch (-got +want):\n%s", job.Command, diff)
			}
			gotOut := output{Stdout: stdout.String(), Stderr: stderr.String()}
			if diff := cmp.Diff(gotOut, tt.out); diff != "" {
				t.Errorf("Run(%q) output mismatch (-got +want):\n%s", job.Command, diff)
			}
		})
	}
}

// TestRunBareImage checks that a failed init is told from a failed
// command in an image with no /tmp that runs as an unprivileged user, and
// that a stack's PATH cannot hide sh.
func TestRunBareImage(t *testing.T) {
	d := newDocker(t)
	image := dockertest.BareImage(t)

	tests := []struct {
		name string
		job  runner.Job
		want runner.Result
	}{
		{
			name: "init fails",
			job:  runner.Job{Init: "exit 3", Command: "echo command ran"},
			want: runner.Result{ExitCode: 3, Phase: runner.PhaseInit},
		},
		{
			name: "command fails after init",
			job:  runner.Job{Init: "true", Command: "exit 4"},
			want: runner.Result{ExitCode: 4, Phase: runner.PhasePerform},
		},
		{
			name: "PATH without /bin",
			job:  runner.Job{Env: []string{"PATH=/nowhere"}, Init: "/bin/true", Command: "exit 5"},
			want: runner.Result{ExitCode: 5, Phase: runner.PhasePerform},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := tt.job
			job.TaskID, job.Image = taskID(t), image

			got, err := d.Run(t.Context(), job, io.Discard, io.Discard)
			if err != nil {
				t.Fatalf("Run(%q) error: %v", job.Command, err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("Run(%q) result mismatch (-got +want):\n%s", job.Command, diff)
			}
		})
	}
}

func TestRunCancel(t *testing.T) {
	d := newDocker(t)
	job := runner.Job{
		TaskID:  taskID(t),
		Image:   dockertest.BusyboxImage(t),
		Command: "echo started; sleep 30",
	}

	// Cancelling on the first output makes sure the container is running.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout := &cancelOnWrite{cancel: cancel}
	_, err := d.Run(ctx, job, stdout, io.Discard)

	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run(%q) with cancelled context: error %v, want %v", job.Command, err, context.Canceled)
	}
	if ids := containers(t, dockertest.Client(t), job.TaskID); len(ids) != 0 {
		t.Errorf("Run(%q) with cancelled context left containers %v", job.Command, ids)
	}
}

func TestRunOutputError(t *testing.T) {
	d := newDocker(t)
	job := runner.Job{
		TaskID:  taskID(t),
		Image:   dockertest.BusyboxImage(t),
		Command: "echo started; sleep 30",
	}
	errWrite := errors.New("disk full")

	_, err := d.Run(t.Context(), job, failingWriter{err: errWrite}, io.Discard)

	if !errors.Is(err, errWrite) {
		t.Fatalf("Run(%q) with failing stdout: error %v, want %v", job.Command, err, errWrite)
	}
}

func TestRunMissingImage(t *testing.T) {
	d := newDocker(t)
	job := runner.Job{
		TaskID:  taskID(t),
		Image:   "taskbot-test/missing:latest",
		Command: "true",
	}

	_, err := d.Run(t.Context(), job, io.Discard, io.Discard)

	if !errors.Is(err, runner.ErrImageUnavailable) {
		t.Fatalf("Run with image %q: error %v, want %v", job.Image, err, runner.ErrImageUnavailable)
	}
}

// TestRunReportsLeftover checks that a container the engine would not
// remove is reported in the Result of a run that otherwise worked.
func TestRunReportsLeftover(t *testing.T) {
	cli := dockertest.Client(t)
	t.Setenv("DOCKER_HOST", engineProxy(t, cli.DaemonHost(), func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodDelete || !strings.Contains(r.URL.Path, "/containers/") {
			return false
		}
		http.Error(w, `{"message":"removal refused by test"}`, http.StatusInternalServerError)
		return true
	}))
	d := newDocker(t)
	job := runner.Job{TaskID: taskID(t), Image: dockertest.BusyboxImage(t), Command: "true"}
	t.Cleanup(func() {
		for _, id := range containers(t, cli, job.TaskID) {
			_, _ = cli.ContainerRemove(context.Background(), id, client.ContainerRemoveOptions{Force: true})
		}
	})

	res, err := d.Run(t.Context(), job, io.Discard, io.Discard)

	if err != nil {
		t.Fatalf("Run(%q) error: %v", job.Command, err)
	}
	if res.ExitCode != 0 || res.Leftover == nil {
		t.Errorf("Run(%q) = %+v, want exit code 0 and a Leftover error", job.Command, res)
	}
	if ids := containers(t, cli, job.TaskID); len(ids) != 1 {
		t.Errorf("Run(%q) left containers %v, want the one it could not remove", job.Command, ids)
	}

	// A run that was cancelled reports its leftover too.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	job.Command = "echo started; sleep 30"
	res, err = d.Run(ctx, job, &cancelOnWrite{cancel: cancel}, io.Discard)
	if !errors.Is(err, context.Canceled) || res.Leftover == nil {
		t.Errorf("cancelled Run(%q) = %+v, %v; want a Leftover error and %v", job.Command, res, err, context.Canceled)
	}
}

// TestRunPullHangs checks that a pull that never ends is given up after
// the pull timeout, and reported as an unavailable image.
func TestRunPullHangs(t *testing.T) {
	cli := dockertest.Client(t)
	t.Setenv("DOCKER_HOST", engineProxy(t, cli.DaemonHost(), func(_ http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/images/create") {
			return false
		}
		<-r.Context().Done() // a registry that never answers
		return true
	}))
	d := newDocker(t)
	runner.SetPullTimeout(d, 200*time.Millisecond)
	job := runner.Job{TaskID: taskID(t), Image: "taskbot-test/missing:latest", Command: "true"}

	_, err := d.Run(t.Context(), job, io.Discard, io.Discard)

	if !errors.Is(err, runner.ErrImageUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run with a hanging pull: error %v, want %v after the deadline", err, runner.ErrImageUnavailable)
	}
}

// engineProxy starts a proxy to the engine at host and returns its
// DOCKER_HOST. intercept answers a request itself by returning true.
func engineProxy(tb testing.TB, host string, intercept func(http.ResponseWriter, *http.Request) bool) string {
	tb.Helper()

	u, err := url.Parse(host)
	if err != nil {
		tb.Fatalf("parse docker host %q: %v", host, err)
	}
	network, addr := u.Scheme, u.Host
	if network == "unix" {
		addr = u.Path
	}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.Out.URL.Scheme, r.Out.URL.Host = "http", "docker" },
		Transport: &http.Transport{DialContext: dial},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !intercept(w, r) {
			proxy.ServeHTTP(w, r)
		}
	}))
	tb.Cleanup(srv.Close)
	return "tcp://" + srv.Listener.Addr().String()
}

func BenchmarkRun(b *testing.B) {
	d := newDocker(b)
	job := runner.Job{TaskID: taskID(b), Image: dockertest.BusyboxImage(b), Command: "true"}

	for b.Loop() {
		res, err := d.Run(b.Context(), job, io.Discard, io.Discard)
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("Run(%q) = %+v, %v; want exit code 0", job.Command, res, err)
		}
	}
}

// newDocker returns a runner for the local engine, skipping through
// dockertest when there is none.
func newDocker(tb testing.TB) *runner.Docker {
	tb.Helper()

	dockertest.Client(tb)
	d, err := runner.New()
	if err != nil {
		tb.Fatalf("New() error: %v", err)
	}
	tb.Cleanup(func() { _ = d.Close() })
	return d
}

// taskID returns a task ID unique to the test and checks, when the test
// ends, that no container labelled with it is left behind.
func taskID(tb testing.TB) string {
	tb.Helper()

	cli := dockertest.Client(tb)
	id := fmt.Sprintf("test-%s-%d", strings.ReplaceAll(tb.Name(), "/", "-"), time.Now().UnixNano())
	tb.Cleanup(func() {
		if ids := containers(tb, cli, id); len(ids) != 0 {
			tb.Errorf("task %s left containers %v", id, ids)
		}
	})
	return id
}

// containers returns the IDs of all containers, running or not, labelled
// with the task ID.
func containers(tb testing.TB, cli *client.Client, taskID string) []string {
	tb.Helper()

	filters := make(client.Filters).Add("label", runner.LabelTask+"="+taskID)
	opts := client.ContainerListOptions{All: true, Filters: filters}
	// The test's context is already cancelled when cleanups run.
	list, err := cli.ContainerList(context.Background(), opts)
	if err != nil {
		tb.Fatalf("list containers of task %s: %v", taskID, err)
	}

	var ids []string
	for _, c := range list.Items {
		ids = append(ids, c.ID)
	}
	return ids
}

// seq returns what `seq 1 n` prints.
func seq(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintln(&b, i)
	}
	return b.String()
}

// cancelOnWrite discards what is written to it and calls cancel on the
// first write.
type cancelOnWrite struct {
	once   sync.Once
	cancel context.CancelFunc
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	w.once.Do(w.cancel)
	return len(p), nil
}

// failingWriter fails every write with err.
type failingWriter struct {
	err error
}

func (w failingWriter) Write([]byte) (int, error) {
	return 0, w.err
}
