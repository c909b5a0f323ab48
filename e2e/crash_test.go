package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/internal/dockertest"
	"github.com/taskbot/taskbot/internal/fakeslack"
	"github.com/taskbot/taskbot/internal/logtest"
	"github.com/taskbot/taskbot/runner"
)

// crashLeaseTTL is the lease TTL every replica of the crash tests uses: a
// killed replica's stack is free again within it.
const crashLeaseTTL = "3s"

// reapDeadline bounds how long after the kill the orphan may run on: the
// lease's 3 s, the reaper's 1 s period and slack for a loaded machine, well
// below the default lease TTL of 30 s.
const reapDeadline = 15 * time.Second

// TestCrash kills a replica with SIGKILL while its task runs: no drain, no
// cleanup, its container keeps running and its lease stays in Redis until
// it expires. Another replica must keep the stack for the dead task while
// the lease lives, then remove the orphan, fail its task and free the stack.
func TestCrash(t *testing.T) {
	bin := buildTaskbot(t)

	t.Run("a restarted replica reaps the orphan", func(t *testing.T) {
		b := newBot(t)
		docker := dockertest.Client(t)
		a := b.startProcess(t, bin, "--lease-ttl", crashLeaseTTL)
		id, owner := b.runSleeper(t, docker)

		killed := time.Now()
		a.kill(t)
		if !containerRunning(t, docker, id, owner) {
			t.Fatalf("the container of task %s stopped with its replica; want it orphaned", id)
		}
		b.wait(t, "the killed replica's socket to close", func() bool { return b.slack.Connections() == 0 })

		b.startReplica(t, "--lease-ttl", crashLeaseTTL)
		waitContainers(t, docker, id, owner, killed.Add(reapDeadline), "the orphan to be removed",
			func(cs []container.Summary) bool { return len(cs) == 0 })
		b.assertOrphanFailed(t, id)

		b.slash(t, alice, "/lock", "")
		b.ephemeral(t, alice, "No stack is locked and no task is running.")
		b.slash(t, alice, "/task", "dev --skip-init echo after-crash")
		m := b.waitTask(t, "echo after-crash")
		if !strings.Contains(m.Plain(), "finished (exit code 0)") || !strings.Contains(b.output(m), "after-crash") {
			t.Errorf("task after the crash = %q with output %q, want it finished", m.Plain(), b.output(m))
		}
	})

	// The replica is up before the kill, so the lease, renewed every second
	// until then, has seconds left when the next task asks for the stack.
	t.Run("a surviving replica keeps the stack while the lease lives", func(t *testing.T) {
		b := newBot(t)
		docker := dockertest.Client(t)
		a := b.startProcess(t, bin, "--lease-ttl", crashLeaseTTL)
		id, owner := b.runSleeper(t, docker)
		b.startReplica(t, "--lease-ttl", crashLeaseTTL)

		a.kill(t)
		b.wait(t, "the killed replica's socket to close", func() bool { return b.slack.Connections() == 1 })
		b.slash(t, bob, "/task", "dev --skip-init echo too-early")
		b.ephemeral(t, bob, "Stack *dev* is busy: task "+id+" by <@"+alice+"> is running.")
		if !containerRunning(t, docker, id, owner) {
			t.Errorf("the container of task %s was removed while its lease lived", id)
		}
		if _, ok := b.taskMessage("echo too-early"); ok {
			t.Errorf("a second task was posted on a stack still leased: %s", b.dump())
		}
	})
}

// crashSleeper is a command that outlives the replica running it.
const crashSleeper = "sleep 600"

// runSleeper runs crashSleeper on stack dev and returns its task's ID and
// the deployment's ID, once a container labelled with both runs. A cleanup
// removes the container, whatever happened to the replicas.
func (b *bot) runSleeper(t *testing.T, docker *client.Client) (id, owner string) {
	t.Helper()
	b.slash(t, alice, "/task", "dev --skip-init "+crashSleeper)
	b.wait(t, "the task to run", func() bool {
		m, ok := b.taskMessage(crashSleeper)
		return ok && strings.Contains(m.Plain(), "running")
	})
	m, _ := b.taskMessage(crashSleeper)
	id = taskID(t, m)

	owner, err := b.store.DeploymentID(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeContainers(t, docker, id, owner) })
	waitContainers(t, docker, id, owner, time.Now().Add(30*time.Second), "the task's container to run",
		func(cs []container.Summary) bool { return len(cs) == 1 && cs[0].State == container.StateRunning })
	return id, owner
}

// assertOrphanFailed checks that the reaped task shows failed, in Slack,
// the store and the audit log.
func (b *bot) assertOrphanFailed(t *testing.T, id string) {
	t.Helper()
	b.wait(t, "the orphaned task to show failed", func() bool {
		m, ok := b.taskMessage(crashSleeper)
		return ok && strings.Contains(m.Plain(), "failed") && strings.Contains(m.Plain(), "lost track of this task")
	})

	task, err := b.store.Task(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if task.State != taskbot.StateFailed {
		t.Errorf("state of the orphaned task %s = %q, want %q", id, task.State, taskbot.StateFailed)
	}
	events := b.events(t, id)
	if n := countType(events, taskbot.EventFailed); n != 1 {
		t.Fatalf("task %s has %d failed events, want 1: %v", id, n, eventTypes(events))
	}
	if reason := findType(events, taskbot.EventFailed).Get("reason"); !strings.Contains(reason, "lost track") {
		t.Errorf("failed event of task %s has reason %q, want it to say taskbot lost track", id, reason)
	}
	if n := countType(events, taskbot.EventFinished); n != 0 {
		t.Errorf("the orphaned task %s was audited as finished: %v", id, eventTypes(events))
	}
}

// buildTaskbot builds the taskbot command, which the crash tests run as a
// process of its own so that they can kill it.
func buildTaskbot(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "taskbot")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/taskbot/taskbot/cmd/taskbot").CombinedOutput()
	if err != nil {
		t.Fatalf("go build taskbot: %v\n%s", err, out)
	}
	return bin
}

// serveProcess is taskbot serve running as a process of its own.
type serveProcess struct {
	cmd  *exec.Cmd
	once sync.Once
	err  error // what Wait returned
}

// startProcess starts bin as one more replica of taskbot serve with extra
// flags, and waits until it is connected. Its log is shown when the test
// fails; a cleanup kills it if the test has not.
func (b *bot) startProcess(t *testing.T, bin string, flags ...string) *serveProcess {
	t.Helper()
	args := append([]string{"serve", "--config", b.cfgPath, "--log-format", "text", "--log-level", "debug"}, flags...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(dockerEnv(),
		"SLACK_APP_TOKEN="+fakeslack.AppToken,
		"SLACK_BOT_TOKEN="+fakeslack.BotToken,
		"SLACK_API_URL="+b.slack.APIURL(),
		"REDIS_URL="+b.redisURL,
		"E2E_SECRET="+envSecret,
	)
	logs := &logtest.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	want := b.slack.Connections() + 1
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}

	p := &serveProcess{cmd: cmd}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("log of the taskbot process:\n%s", logs.String())
		}
	})
	b.wait(t, "the taskbot process to connect to Slack", func() bool { return b.slack.Connections() >= want })
	return p
}

// dockerEnv returns the variables of the test's environment that the
// process needs to find its tools and the Docker engine, and no others:
// whatever else the test runs with must not configure taskbot.
func dockerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "PATH" || k == "HOME" || k == "TMPDIR" || strings.HasPrefix(k, "DOCKER_") {
			env = append(env, kv)
		}
	}
	return env
}

// kill sends SIGKILL, waits for the process and checks that the signal, not
// a shutdown of its own, ended it.
func (p *serveProcess) kill(t *testing.T) {
	t.Helper()
	err := p.stop()
	if p.cmd.ProcessState == nil {
		t.Fatalf("kill the taskbot process: %v", err)
	}
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("taskbot process ended with %v, want killed by SIGKILL", err)
	}
}

// stop kills the process once and returns what Wait returned.
func (p *serveProcess) stop() error {
	p.once.Do(func() {
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.err = err
			return
		}
		p.err = p.cmd.Wait()
	})
	return p.err
}

// taskContainers lists the containers of task id in deployment owner.
func taskContainers(ctx context.Context, t *testing.T, docker *client.Client, id, owner string) []container.Summary {
	t.Helper()
	res, err := docker.ContainerList(ctx, client.ContainerListOptions{
		All: true,
		Filters: make(client.Filters).Add("label",
			runner.LabelTask+"="+id, runner.LabelOwner+"="+owner),
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Items
}

// containerRunning reports whether the container of task id runs.
func containerRunning(t *testing.T, docker *client.Client, id, owner string) bool {
	t.Helper()
	cs := taskContainers(t.Context(), t, docker, id, owner)
	return len(cs) == 1 && cs[0].State == container.StateRunning
}

// waitContainers polls Docker until the containers of task id satisfy ok,
// and fails the test at deadline.
func waitContainers(t *testing.T, docker *client.Client, id, owner string, deadline time.Time,
	what string, ok func([]container.Summary) bool) {
	t.Helper()
	for {
		cs := taskContainers(t.Context(), t, docker, id, owner)
		if ok(cs) {
			return
		}
		if time.Now().After(deadline) {
			states := make([]container.ContainerState, len(cs))
			for i, c := range cs {
				states[i] = c.State
			}
			t.Fatalf("waiting for %s: the containers of task %s are %v", what, id, states)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeContainers force-removes the containers of task id, so that a
// failed test leaves no sleeping container behind. It runs in a cleanup, when the
// test's context has already ended.
func removeContainers(t *testing.T, docker *client.Client, id, owner string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range taskContainers(ctx, t, docker, id, owner) {
		_, err := docker.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("remove the container of task %s: %v", id, err)
		}
	}
}
