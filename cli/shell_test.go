package cli

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/taskbot/taskbot/internal/dockertest"
	"github.com/taskbot/taskbot/internal/logtest"
	"github.com/taskbot/taskbot/internal/redistest"
)

// TestShellWithoutTasks drives taskbot shell with the embedded store
// through commands that run nothing, so that no container engine is
// needed, and checks what it printed and logged.
func TestShellWithoutTasks(t *testing.T) {
	dockertest.Client(t) // serve and shell ping the engine at start
	secret := "s3cr3t-shell-value"
	path := writeFile(t, t.TempDir(), "taskbot.yaml",
		"stacks:\n  dev:\n    image: busybox\n    writers: [U0DEMO]\n    secrets: {TOKEN: {env: DEMO_SECRET}}\n")
	input := strings.Join([]string{
		"/lock dev maintenance",
		"/lock",
		"/unlock dev",
		"/task nope echo hi",
		"/lock dev " + secret,
	}, "\n")

	var out, logs logtest.Buffer
	err := Run(t.Context(), []string{"shell", "--config", path, "--user", "U0DEMO"},
		IO{In: strings.NewReader(input), Out: &out, Err: &logs,
			Getenv: func(k string) string { return map[string]string{"DEMO_SECRET": secret}[k] }})
	if err != nil {
		t.Fatalf("taskbot shell: %v\nlog:\n%s", err, logs.String())
	}

	for _, want := range []string{
		"@U0DEMO locked stack *dev*: maintenance.",
		"• *dev*: locked by @U0DEMO since ",
		"@U0DEMO unlocked stack *dev*.",
		`There is no stack "nope".`,
		"Your reason contains a secret value",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("shell output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(logs.String(), "using the embedded store") {
		t.Errorf("shell did not warn that the store is embedded; log:\n%s", logs.String())
	}
	if strings.Contains(out.String()+logs.String(), secret) {
		t.Errorf("shell printed or logged the secret")
	}
}

// TestShellMasksRedisPassword checks that the password in REDIS_URL is
// masked like a secret: a lock reason holding it is refused.
func TestShellMasksRedisPassword(t *testing.T) {
	dockertest.Client(t)
	const password = "redis-pw-8d1f"
	url := redistest.URL(t)
	rdb, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(rdb)
	defer admin.Close()
	if err := admin.ConfigSet(t.Context(), "requirepass", password).Err(); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, t.TempDir(), "taskbot.yaml", "stacks:\n  dev: {image: busybox, writers: [U0DEMO]}\n")

	var out, logs logtest.Buffer
	err = Run(t.Context(), []string{"shell", "--config", path, "--user", "U0DEMO"},
		IO{In: strings.NewReader("/lock dev " + password), Out: &out, Err: &logs,
			Getenv: func(k string) string {
				return map[string]string{"REDIS_URL": strings.Replace(url, "unix://", "unix://:"+password+"@", 1)}[k]
			}})
	if err != nil {
		t.Fatalf("taskbot shell: %v\nlog:\n%s", err, logs.String())
	}

	if !strings.Contains(out.String(), "Your reason contains a secret value") {
		t.Errorf("a lock reason holding the Redis password was not refused:\n%s", out.String())
	}
	if strings.Contains(out.String()+logs.String(), password) {
		t.Errorf("shell printed or logged the Redis password")
	}
}

// TestLogOptions checks that a log format or level taskbot does not know
// is refused, naming the flag.
func TestLogOptions(t *testing.T) {
	path := writeFile(t, t.TempDir(), "taskbot.yaml", "stacks:\n  dev: {image: busybox, writers: [U0DEMO]}\n")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--log-format", "xml"}, `--log-format: "xml" is neither json nor text`},
		{[]string{"--log-level", "loud"}, "--log-level: "},
	}
	for _, tt := range tests {
		args := append([]string{"shell", "--config", path, "--user", "U0DEMO"}, tt.args...)
		if _, err := run(t, nil, args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("taskbot %s = %v, want an error with %q", strings.Join(args, " "), err, tt.want)
		}
	}
}
