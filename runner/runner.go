// Package runner runs one task's command in a container through the Docker
// Engine API and reports how it ended.
//
// Each task gets exactly one container. A fixed shell script inside it runs
// the stack's init (if any) and then the command; both reach the container as
// environment variables, so user text is never spliced into a script.
package runner

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Job is one command to run in a fresh container.
type Job struct {
	TaskID  string        // labels the container: taskbot.task=<id>, taskbot.managed=true
	Stack   string        // labels the container: taskbot.stack=<name>
	Owner   string        // labels the container: taskbot.owner=<id> of the deployment that runs it
	Image   string        // must exist locally unless the engine can pull it
	Init    string        // optional: runs as `sh -c "$init"` first; "" means no init phase
	Command string        // runs as `sh -c "$command"` after init succeeded
	Workdir string        // optional
	Env     []string      // KEY=VALUE, secrets included: never log a Job's Env
	Timeout time.Duration // 0: none; measured from the container's start
}

// Phase is the part of a Job a container was running.
type Phase string

// The phases of a Job: init runs first, when the Job has one, then perform
// runs the command.
const (
	PhaseInit    Phase = "init"
	PhasePerform Phase = "perform"
)

// Result is how a Job's container ended.
type Result struct {
	ExitCode int   // the container's exit code; 137 when it was killed
	Phase    Phase // the phase the run ended in
	TimedOut bool  // the container was killed because Job.Timeout passed

	// Leftover is why the container could not be removed after the run.
	// Its labels let the reaper, or an operator, find it.
	Leftover error
}

// ErrImageUnavailable is returned when a Job's image is missing locally and
// could not be pulled.
var ErrImageUnavailable = errors.New("image unavailable")

// The labels every container the runner creates carries, so that tests and
// operators can find them.
const (
	LabelTask    = "taskbot.task"
	LabelStack   = "taskbot.stack"
	LabelOwner   = "taskbot.owner"
	LabelManaged = "taskbot.managed"
)

// The variables that carry a Job's init, command and init marker into its
// container.
const (
	envInit    = "TASKBOT_INIT"
	envCommand = "TASKBOT_COMMAND"
	envMarker  = "TASKBOT_MARKER"
)

// An init marker exists in a container while its init runs, so that a run
// ending then, by failing or being killed, can be told from one ending in
// the command without adding anything to the output. It lives in a
// directory of a name no image holds, put into the container before it
// starts and writable by anyone, because images may have no /tmp or run as
// a user who can write nowhere else.
const (
	markerDirPrefix = "/.taskbot-"
	markerFile      = "init"
)

// script is the container's entrypoint. The subshells keep a failure to
// handle the marker from ending the script or showing in the output. sh is
// called by its path, as POSIX places it, so that a stack's PATH cannot hide
// it. The command is handed over as a positional parameter so that it does
// not see the variables that carried it; "--" keeps a command that starts
// with "-" from being read as an option of sh.
const script = `if [ -n "$` + envInit + `" ]; then
	(: >"$` + envMarker + `") 2>/dev/null
	/bin/sh -c -- "$` + envInit + `" || exit
	(rm -f "$` + envMarker + `") 2>/dev/null
fi
set -- "$` + envCommand + `"
unset ` + envInit + ` ` + envCommand + ` ` + envMarker + `
exec /bin/sh -c -- "$1"`

// cleanupTimeout bounds removing a container once a run is over, which
// happens even when the caller's context is cancelled.
const cleanupTimeout = 30 * time.Second

// Docker runs Jobs through the Docker Engine API. It is safe for concurrent
// use.
type Docker struct {
	cli         *client.Client
	pullTimeout time.Duration
}

// defaultPullTimeout bounds pulling a missing image. The task holds its
// stack meanwhile, so a registry that hangs must not keep it for ever.
const defaultPullTimeout = 10 * time.Minute

// New returns a Docker that talks to the engine the environment points at
// (DOCKER_HOST and friends). The API version is negotiated down to the
// engine's on the first request, so New does not connect.
func New() (*Docker, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Docker{cli: cli, pullTimeout: defaultPullTimeout}, nil
}

// Close releases the client's idle connections.
func (d *Docker) Close() error {
	return d.cli.Close()
}

// Run runs job in a new container, copying its output to stdout and stderr
// until it exits, and removes the container on every path; one it could not
// remove is reported in Result.Leftover, with an error too. A non-zero exit
// code is a Result, not an error. When ctx is cancelled, Run kills the
// container and returns an error wrapping ctx.Err(). All output is written
// from a single goroutine, and never after Run returns.
func (d *Docker) Run(ctx context.Context, job Job, stdout, stderr io.Writer) (res Result, err error) {
	if err := d.ensureImage(ctx, job.Image); err != nil {
		return Result{}, err
	}

	marker := ""
	if job.Init != "" {
		marker = newMarkerDir() + "/" + markerFile
	}
	id, err := d.create(ctx, job, marker)
	if err != nil {
		return Result{}, err
	}
	defer func() { res.Leftover = d.remove(ctx, id) }()

	if marker != "" {
		if err := d.addMarkerDir(ctx, id, path.Dir(marker)); err != nil {
			return Result{}, err
		}
	}

	code, timedOut, err := d.execute(ctx, id, job.Timeout, stdout, stderr)
	if err != nil {
		return Result{}, err
	}

	phase, err := d.phase(ctx, id, marker, code)
	if err != nil {
		return Result{}, err
	}
	return Result{ExitCode: code, Phase: phase, TimedOut: timedOut}, nil
}

// ensureImage makes sure image exists locally, trying one pull if it does not.
func (d *Docker) ensureImage(ctx context.Context, image string) error {
	_, err := d.cli.ImageInspect(ctx, image)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %q: %w", image, err)
	}

	pullCtx, cancel := context.WithTimeout(ctx, d.pullTimeout)
	defer cancel()
	err = d.pull(pullCtx, image)
	if err != nil && ctx.Err() != nil {
		// A cancelled pull says nothing about the image.
		return fmt.Errorf("pull image %q: %w", image, ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrImageUnavailable, image, err)
	}
	return nil
}

// pull pulls image and waits for the pull to finish.
func (d *Docker) pull(ctx context.Context, image string) error {
	resp, err := d.cli.ImagePull(ctx, image, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	return resp.Wait(ctx)
}

// create creates job's container and returns its ID. marker is the path of
// its init marker, if it has an init.
func (d *Docker) create(ctx context.Context, job Job, marker string) (string, error) {
	env := make([]string, 0, len(job.Env)+3)
	env = append(env, job.Env...)
	env = append(env, envInit+"="+job.Init, envCommand+"="+job.Command, envMarker+"="+marker)

	cfg := &container.Config{
		Image:        job.Image,
		Entrypoint:   []string{"/bin/sh", "-c", script, "taskbot"},
		Env:          env,
		WorkingDir:   job.Workdir,
		AttachStdout: true,
		AttachStderr: true,
		Labels: map[string]string{
			LabelTask: job.TaskID, LabelStack: job.Stack, LabelOwner: job.Owner, LabelManaged: "true",
		},
	}

	// A create cancelled in flight may still create the container, whose ID
	// we would then never learn: let it finish and check ctx afterwards.
	createCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	resp, err := d.cli.ContainerCreate(createCtx, client.ContainerCreateOptions{Config: cfg})
	if err != nil {
		return "", fmt.Errorf("create container: %w", err)
	}

	if err := ctx.Err(); err != nil {
		return "", errors.Join(fmt.Errorf("create container: %w", err), d.remove(ctx, resp.ID))
	}
	return resp.ID, nil
}

// newMarkerDir returns a path for a marker directory that no image holds.
func newMarkerDir() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails
	return markerDirPrefix + hex.EncodeToString(b[:])
}

// addMarkerDir puts dir, writable by anyone, into container id before it
// starts.
func (d *Docker) addMarkerDir(ctx context.Context, id, dir string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(dir, "/") + "/", Mode: 0o1777}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write marker directory: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write marker directory: %w", err)
	}
	_, err := d.cli.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: "/", Content: &buf})
	if err != nil {
		return fmt.Errorf("add marker directory: %w", err)
	}
	return nil
}

// Container is a container the runner made, as Containers finds it.
type Container struct {
	ID     string
	TaskID string
	Stack  string
}

// Containers lists the containers, running or not, that the runner made
// for owner's jobs. A replica that crashed leaves its containers behind; this
// is how the others find them.
func (d *Docker) Containers(ctx context.Context, owner string) ([]Container, error) {
	res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", LabelManaged+"=true", LabelOwner+"="+owner),
	})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	cs := make([]Container, len(res.Items))
	for i, c := range res.Items {
		cs[i] = Container{ID: c.ID, TaskID: c.Labels[LabelTask], Stack: c.Labels[LabelStack]}
	}
	return cs, nil
}

// Remove force-removes container id, killing it if it still runs.
func (d *Docker) Remove(ctx context.Context, id string) error {
	_, err := d.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
}

// Ping checks that the engine answers.
func (d *Docker) Ping(ctx context.Context) error {
	if _, err := d.cli.Ping(ctx, client.PingOptions{}); err != nil {
		return fmt.Errorf("ping docker engine: %w", err)
	}
	return nil
}

// remove force-removes container id, which also kills it if it still runs.
// It uses a context of its own so that a cancelled run still cleans up.
func (d *Docker) remove(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	return d.Remove(ctx, id)
}

// execute starts container id and waits until it has exited and all its
// output has been copied. It kills the container once timeout passes.
func (d *Docker) execute(ctx context.Context, id string, timeout time.Duration,
	stdout, stderr io.Writer) (code int, timedOut bool, err error) {
	// Attaching before the start is what guarantees no output is missed.
	opts := client.ContainerAttachOptions{Stream: true, Stdout: true, Stderr: true}
	attach, err := d.cli.ContainerAttach(ctx, id, opts)
	if err != nil {
		return 0, false, fmt.Errorf("attach container: %w", err)
	}
	defer attach.Close()

	if _, err := d.cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return 0, false, fmt.Errorf("start container: %w", err)
	}

	var copier sync.WaitGroup
	copied := make(chan error, 1)
	copier.Go(func() {
		_, err := stdcopy.StdCopy(stdout, stderr, attach.Reader)
		copied <- err
	})

	code, timedOut, err = d.await(ctx, id, timeout, copied)
	if err != nil {
		// The copier must stop writing before Run returns: closing the
		// connection ends its read.
		attach.Close()
		copier.Wait()
	}
	return code, timedOut, err
}

// await waits for container id to exit and for copied to report the end of
// its output, killing the container once timeout passes.
func (d *Docker) await(ctx context.Context, id string, timeout time.Duration,
	copied <-chan error) (code int, timedOut bool, err error) {
	wait := d.cli.ContainerWait(ctx, id, client.ContainerWaitOptions{
		Condition: container.WaitConditionNotRunning,
	})
	results, waitErrs := wait.Result, wait.Error

	var deadline <-chan time.Time
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		deadline = timer.C
	}

	// A nil channel blocks forever, which retires each case once it fired.
	for results != nil || copied != nil {
		select {
		case res := <-results:
			if res.Error != nil {
				return 0, false, fmt.Errorf("wait container: %s", res.Error.Message)
			}
			code, results, waitErrs, deadline = int(res.StatusCode), nil, nil, nil
		case err := <-waitErrs:
			if ctx.Err() != nil {
				return 0, false, fmt.Errorf("wait container: %w", ctx.Err())
			}
			return 0, false, fmt.Errorf("wait container: %w", err)
		case err := <-copied:
			if err != nil {
				return 0, false, fmt.Errorf("copy output: %w", err)
			}
			copied = nil
		case <-deadline:
			timedOut, err = d.kill(ctx, id)
			if err != nil {
				return 0, false, err
			}
			deadline = nil
		case <-ctx.Done():
			return 0, false, fmt.Errorf("wait container: %w", ctx.Err())
		}
	}
	return code, timedOut, nil
}

// kill kills container id and reports whether it did. A container that
// exited on its own in the meantime is not an error: waiting reports its
// exit code.
func (d *Docker) kill(ctx context.Context, id string) (killed bool, err error) {
	_, err = d.cli.ContainerKill(ctx, id, client.ContainerKillOptions{})
	if cerrdefs.IsConflict(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("kill container: %w", err)
	}
	return true, nil
}

// phase returns the phase container id's run ended in, given its init
// marker ("" without an init) and its exit code. Only a failed run of a job
// with an init can have ended in init, so only then does it look for the
// marker.
func (d *Docker) phase(ctx context.Context, id, marker string, code int) (Phase, error) {
	if code == 0 || marker == "" {
		return PhasePerform, nil
	}

	resp, err := d.cli.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{
		SourcePath: marker,
	})
	if cerrdefs.IsNotFound(err) {
		return PhasePerform, nil
	}
	if err != nil {
		return "", fmt.Errorf("read init marker: %w", err)
	}
	_ = resp.Content.Close()
	return PhaseInit, nil
}
