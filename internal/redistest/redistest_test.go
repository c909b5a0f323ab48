package redistest_test

import (
	"errors"
	"strconv"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/taskbot/taskbot/internal/redistest"
)

func TestStart(t *testing.T) {
	rdb := redistest.Start(t)

	if err := rdb.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	got, err := rdb.Get(t.Context(), "k").Result()
	if err != nil || got != "v" {
		t.Errorf("GET k = %q, %v; want %q, nil", got, err, "v")
	}
}

func TestStartIsFresh(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)

	if err := a.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if n, err := b.Exists(t.Context(), "k").Result(); err != nil || n != 0 {
		t.Errorf("EXISTS k on the second server = %d, %v; want 0, nil", n, err)
	}
}

func TestURL(t *testing.T) {
	opts, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatalf("ParseURL: %v", err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })

	if err := rdb.Ping(t.Context()).Err(); err != nil {
		t.Errorf("PING: %v", err)
	}
}

func TestServerStopsAtCleanup(t *testing.T) {
	var pid int
	t.Run("server", func(t *testing.T) {
		info, err := redistest.Start(t).InfoMap(t.Context(), "server").Result()
		if err != nil {
			t.Fatalf("INFO server: %v", err)
		}
		if pid, err = strconv.Atoi(info["Server"]["process_id"]); err != nil {
			t.Fatalf("parse process_id: %v", err)
		}
	})

	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("signal 0 to redis-server %d after its test = %v; want ESRCH", pid, err)
	}
}
