// Package store is taskbot's Redis layer: delivery dedupe, tasks, approvals,
// stack locks and leases, and the audit stream.
//
// Several replicas of the bot share one Redis, so every check-and-set below
// is a single atomic step on the server (a Lua script or MULTI), never a read
// followed by a write. The same code runs against miniredis, the embedded
// store of `taskbot shell`, so it uses only commands miniredis supports.
//
// The package returns errors and never logs.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbot/taskbot"
)

// DefaultPrefix is the key prefix used when none is given.
const DefaultPrefix = "taskbot:"

// ErrLeaseLost is returned when renewing or releasing a lease whose token no
// longer holds the stack: the lease expired, and perhaps another task took it.
// It is the domain's sentinel, so callers need not import this package.
var ErrLeaseLost = taskbot.ErrLeaseLost

// ErrNotLocked is returned when unlocking a stack that has no manual lock.
var ErrNotLocked = taskbot.ErrNotLocked

// errMalformedURL stands in for url.Parse's error, which would repeat the URL
// and with it any password.
var errMalformedURL = errors.New("malformed redis URL")

// Store keeps taskbot's state in Redis. All its keys start with its prefix.
// It is safe for concurrent use, also by several processes sharing one Redis.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
}

// New returns a Store over rdb whose keys start with prefix, or with
// [DefaultPrefix] when prefix is "". With Redis Cluster, put a hash tag in the
// prefix (e.g. "{taskbot}:") so that the keys of one script share a slot.
func New(rdb redis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Store{rdb: rdb, prefix: prefix}
}

// Open connects to the Redis at rawURL (redis://[:password@]host:port/db,
// rediss://… or unix:///path.sock), checks that it answers, and returns a
// Store over it. Errors name the URL without its credentials.
func Open(ctx context.Context, rawURL, prefix string) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open redis: %w", errMalformedURL)
	}
	name := redact(u)

	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open redis %s: %w", name, err)
	}
	rdb := redis.NewClient(opts)

	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close() // the ping error is the one worth reporting
		return nil, fmt.Errorf("open redis %s: %w", name, err)
	}
	return New(rdb, prefix), nil
}

// redact returns the URL without user info and query, either of which may
// hold a password.
func redact(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// Close closes the Redis client, also one that was handed to [New].
func (s *Store) Close() error {
	return s.rdb.Close()
}

// key joins the prefix and parts with colons.
func (s *Store) key(parts ...string) string {
	return s.prefix + strings.Join(parts, ":")
}

// formatTime is how times are stored: RFC 3339 with nanoseconds, in UTC.
func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// now returns the current time in UTC, without the monotonic reading that a
// stored and reloaded time would lose anyway.
func now() time.Time {
	return time.Now().UTC().Round(0)
}

// replyFields reads a script reply of the form {status, key, value, …}.
func replyFields(reply any) (string, map[string]string, error) {
	items, ok := reply.([]any)
	if !ok || len(items) == 0 || len(items)%2 == 0 {
		return "", nil, fmt.Errorf("unexpected script reply %T", reply)
	}
	status, _ := items[0].(string)

	m := make(map[string]string, len(items)/2)
	for i := 1; i < len(items); i += 2 {
		k, okK := items[i].(string)
		v, okV := items[i+1].(string)
		if !okK || !okV {
			return "", nil, fmt.Errorf("unexpected script reply field %T=%T", items[i], items[i+1])
		}
		m[k] = v
	}
	return status, m, nil
}

// DeploymentID returns the ID that names this Redis and prefix: the one
// deployment whose replicas share them. Containers are labelled with it, so
// that replicas clean up only their own deployment's leftovers on a Docker
// engine that other deployments may share. The first caller creates it.
func (s *Store) DeploymentID(ctx context.Context) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make deployment ID: %w", err)
	}
	key := s.key("deployment")
	if err := s.rdb.SetNX(ctx, key, hex.EncodeToString(b[:]), 0).Err(); err != nil {
		return "", fmt.Errorf("set deployment ID: %w", err)
	}
	id, err := s.rdb.Get(ctx, key).Result()
	if err != nil {
		return "", fmt.Errorf("read deployment ID: %w", err)
	}
	return id, nil
}
