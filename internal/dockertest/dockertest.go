// Package dockertest connects tests to the local Docker engine and gives them
// a tiny busybox image that is built locally, because no image can be pulled
// on the machines our tests run on.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/taskbot/taskbot/internal/integration"
)

// busyboxPath is where Debian's busybox-static package installs its
// statically linked binary, the only file the test image needs.
const busyboxPath = "/bin/busybox"

// The references of the test images BusyboxImage and BareImage return.
const (
	busyboxRef = "taskbot-test/busybox:latest"
	bareRef    = "taskbot-test/busybox-bare:latest"
)

// busyboxApplets are the commands the test image links to busybox in /bin.
var busyboxApplets = []string{
	"sh", "echo", "cat", "sleep", "true", "false", "env", "printf", "pwd", "ls",
	"mkdir", "touch", "test", "[", "wc", "head", "tr", "yes", "id", "seq", "dd",
}

// builtImage is a test image built at most once per process.
type builtImage struct {
	ref   string
	build func(context.Context, *client.Client) error
	once  sync.Once
	err   error
}

// get returns the image's reference, building it the first time a process
// asks unless the engine already has it.
func (b *builtImage) get(tb testing.TB, cli *client.Client) string {
	tb.Helper()
	b.once.Do(func() {
		_, err := cli.ImageInspect(tb.Context(), b.ref)
		if cerrdefs.IsNotFound(err) {
			err = b.build(tb.Context(), cli)
		}
		b.err = err
	})
	if b.err != nil {
		tb.Fatalf("test image %q: %v", b.ref, b.err)
	}
	return b.ref
}

// The test images: busybox, and the same without /tmp, run as an
// unprivileged user.
var (
	busybox = &builtImage{ref: busyboxRef, build: func(ctx context.Context, cli *client.Client) error {
		return BuildBusyboxImage(ctx, cli, busyboxRef)
	}}
	bare = &builtImage{ref: bareRef, build: func(ctx context.Context, cli *client.Client) error {
		return buildImage(ctx, cli, bareRef, false, "USER 65534")
	}}
)

// Client returns a client connected to the local Docker engine with its API
// version negotiated. It stops the test through [integration.Unavailable]
// when the engine cannot be reached, and closes the client when the test ends.
func Client(tb testing.TB) *client.Client {
	tb.Helper()

	cli, err := client.New(client.FromEnv)
	if err != nil {
		integration.Unavailable(tb, "docker client: %v", err)
	}
	tb.Cleanup(func() { _ = cli.Close() })

	// Negotiating now, rather than on the first request, turns an absent
	// engine into a skip instead of a confusing failure later on.
	opts := client.PingOptions{NegotiateAPIVersion: true}
	if _, err := cli.Ping(tb.Context(), opts); err != nil {
		integration.Unavailable(tb, "docker engine not reachable: %v", err)
	}
	return cli
}

// BusyboxImage returns the reference of a local busybox image, building it
// the first time a process asks unless the engine already has it. It stops
// the test through [integration.Unavailable] when Docker or busybox-static is
// missing.
func BusyboxImage(tb testing.TB) string {
	tb.Helper()

	cli := Client(tb)
	if _, err := os.Stat(busyboxPath); err != nil {
		integration.Unavailable(tb, "busybox-static not installed: %v", err)
	}

	return busybox.get(tb, cli)
}

// BuildBusyboxImage imports, as ref, an image holding the host's
// /bin/busybox, links to it in /bin for common commands, and a /tmp
// directory. It always builds, even when ref already exists.
func BuildBusyboxImage(ctx context.Context, cli *client.Client, ref string) error {
	return buildImage(ctx, cli, ref, true)
}

// BareImage returns the reference of a busybox image like BusyboxImage's
// but without /tmp, run as an unprivileged user: an image with nowhere
// obvious to write. It builds it the first time a process asks unless the
// engine already has it.
func BareImage(tb testing.TB) string {
	tb.Helper()
	BusyboxImage(tb) // checks for Docker and busybox-static
	return bare.get(tb, Client(tb))
}

// buildImage imports, as ref, the busybox filesystem, with /tmp if withTmp,
// and applies changes, Dockerfile instructions such as "USER 65534".
func buildImage(ctx context.Context, cli *client.Client, ref string, withTmp bool, changes ...string) error {
	rootfs, err := busyboxRootfs(withTmp)
	if err != nil {
		return err
	}

	source := client.ImageImportSource{Source: rootfs, SourceName: "-"}
	resp, err := cli.ImageImport(ctx, source, ref, client.ImageImportOptions{Changes: changes})
	if err != nil {
		return fmt.Errorf("import image %q: %w", ref, err)
	}
	defer resp.Close()

	if err := streamError(resp); err != nil {
		return fmt.Errorf("import image %q: %w", ref, err)
	}
	return nil
}

// busyboxRootfs returns a tar archive of a test image's filesystem.
func busyboxRootfs(withTmp bool) (io.Reader, error) {
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	headers := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755},
		{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))},
	}
	if withTmp {
		headers = append(headers, &tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777})
	}
	for _, applet := range busyboxApplets {
		headers = append(headers, &tar.Header{
			Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777,
		})
	}

	for _, hdr := range headers {
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write %s to rootfs: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bin); err != nil {
				return nil, fmt.Errorf("write %s to rootfs: %w", hdr.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close rootfs: %w", err)
	}
	return &buf, nil
}

// streamError reads a daemon's JSON message stream to its end and returns the
// first error it reports: the HTTP status alone does not reveal a failure
// that happens once the stream has begun.
func streamError(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg jsonstream.Message
		err := dec.Decode(&msg)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read progress: %w", err)
		}
		if msg.Error != nil {
			return msg.Error
		}
	}
}
