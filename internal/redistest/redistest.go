// Package redistest starts throwaway redis-server processes for tests, so
// that tests run against real Redis rather than a fake.
//
// Each server listens only on a unix socket in the test's temporary
// directory, keeps nothing on disk, and is killed when the test ends. When
// redis-server is not installed, the test is handed to
// [integration.Unavailable].
package redistest

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskbot/taskbot/internal/integration"
)

// startTimeout bounds how long a server may take to answer its first PING.
const startTimeout = 10 * time.Second

// maxSocketPath is the longest unix socket path Linux accepts, less its NUL.
const maxSocketPath = 107

// errExited reports a server that exited before it answered.
var errExited = errors.New("redis-server exited")

// Start starts a fresh redis-server and returns a client connected to it.
// The server and the client are closed when the test ends.
func Start(tb testing.TB) *redis.Client {
	tb.Helper()

	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: start(tb)})
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// URL starts a fresh redis-server, like [Start], and returns its
// unix:///… URL for a separate process or client to use.
func URL(tb testing.TB) string {
	tb.Helper()

	return "unix://" + start(tb)
}

// start runs redis-server on a socket in tb.TempDir, waits until it answers
// PING, and returns the socket's path.
func start(tb testing.TB) string {
	tb.Helper()

	bin, err := exec.LookPath("redis-server")
	if err != nil {
		integration.Unavailable(tb, "redis-server not found: %v", err)
	}
	dir := tb.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	if len(sock) > maxSocketPath {
		tb.Fatalf("socket path %q is too long for a unix socket; set TMPDIR to a shorter directory", sock)
	}
	logFile := filepath.Join(dir, "redis.log")

	cmd := exec.Command(bin,
		"--port", "0",
		"--unixsocket", sock,
		"--unixsocketperm", "700",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--logfile", logFile,
	)
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a killed server says nothing
		close(exited)
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	if err := waitReady(sock, exited); err != nil {
		log, _ := os.ReadFile(logFile)
		tb.Fatalf("redis-server did not start: %v\n%s", err, log)
	}
	return sock
}

// waitReady waits until the server on sock accepts connections, then checks
// that it answers PING. It gives up when the server exits or startTimeout
// passes.
func waitReady(sock string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	// Plain dials, because go-redis logs every failed one.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := net.Dial("unix", sock)
		if err == nil {
			_ = conn.Close()
			break
		}
		select {
		case <-exited:
			return errExited
		case <-ctx.Done():
			return err
		case <-tick.C:
		}
	}

	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	defer rdb.Close()
	return rdb.Ping(ctx).Err()
}
