package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/taskbot/taskbot/config"
	"github.com/taskbot/taskbot/mask"
	"github.com/taskbot/taskbot/policy"
	"github.com/taskbot/taskbot/runner"
	"github.com/taskbot/taskbot/store"
	"github.com/taskbot/taskbot/task"
)

// common holds the options serve and shell share.
type common struct {
	configPath string
	redisURL   string
	logFormat  string
	logLevel   string
}

func (c *common) flags(cmd *cobra.Command, logFormat, logLevel string) {
	f := cmd.Flags()
	f.StringVar(&c.configPath, "config", "taskbot.yaml", "path of the YAML configuration file (env TASKBOT_CONFIG)")
	f.StringVar(&c.redisURL, "redis-url", "", "Redis URL, redis://host:port/db or unix:///path; empty uses the embedded single-instance store (env REDIS_URL)")
	f.StringVar(&c.logFormat, "log-format", logFormat, "log format: json or text")
	f.StringVar(&c.logLevel, "log-level", logLevel, "log level: debug, info, warn or error")
}

// fromEnv fills options that were not given as flags from the environment:
// flags win over the environment, which wins over defaults.
func (c *common) fromEnv(cmd *cobra.Command, getenv func(string) string) {
	envDefault(cmd, "config", &c.configPath, getenv("TASKBOT_CONFIG"))
	envDefault(cmd, "redis-url", &c.redisURL, getenv("REDIS_URL"))
}

func envDefault(cmd *cobra.Command, flag string, dst *string, env string) {
	if !cmd.Flags().Changed(flag) && env != "" {
		*dst = env
	}
}

// app is taskbot's parts, opened from the configuration.
type app struct {
	cfg    *config.Config
	masker *mask.Masker
	log    *logrus.Logger
	store  *store.Store
	policy *policy.Engine
	runner *runner.Docker
	owner  string // the deployment's ID; labels its containers
	closer []func() error
}

// open loads the configuration and connects to Redis (or starts the
// embedded store) and Docker. Close releases what it opened. tokens, and
// the Redis URL's password, are masked like the stacks' secrets, so that not
// even a library's debug log can show them.
func open(ctx context.Context, c common, errOut io.Writer, getenv func(string) string, tokens ...string) (*app, error) {
	cfg, err := config.Load(c.configPath, getenv)
	if err != nil {
		return nil, err // it names the file
	}
	secrets := append(revealAll(cfg), redisPassword(c.redisURL))
	a := &app{cfg: cfg, masker: mask.New(append(secrets, tokens...)...)}
	if a.log, err = newLogger(errOut, c.logFormat, c.logLevel, a.masker); err != nil {
		return nil, err
	}
	if err := a.openParts(ctx, c); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	return a, nil
}

func (a *app) openParts(ctx context.Context, c common) error {
	var err error
	if a.policy, err = policy.Load(ctx, a.cfg.Policies); err != nil {
		return fmt.Errorf("load policies: %w", err)
	}
	if a.policy.Empty() {
		a.log.Warn("no task policies loaded: every writer's task is allowed without approval")
	}
	if a.store, err = a.openStore(ctx, c.redisURL); err != nil {
		return err
	}
	a.closer = append(a.closer, a.store.Close)
	if a.owner, err = a.store.DeploymentID(ctx); err != nil {
		return err
	}
	if a.runner, err = runner.New(); err != nil {
		return fmt.Errorf("connect to docker: %w", err)
	}
	a.closer = append(a.closer, a.runner.Close)
	if err := a.runner.Ping(ctx); err != nil {
		return fmt.Errorf("%w (is the Docker engine running, and DOCKER_HOST right?)", err)
	}
	return nil
}

// openStore connects to Redis, or starts the embedded store when no URL is
// given.
func (a *app) openStore(ctx context.Context, url string) (*store.Store, error) {
	if url != "" {
		return store.Open(ctx, url, a.cfg.Prefix)
	}
	a.log.Warn("REDIS_URL not set: using the embedded store, which is single-instance and keeps nothing across restarts")
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		return nil, fmt.Errorf("start embedded store: %w", err)
	}
	a.closer = append(a.closer, func() error { mr.Close(); return nil })
	return store.New(redis.NewClient(&redis.Options{Addr: mr.Addr()}), a.cfg.Prefix), nil
}

// service returns the task lifecycle over a's parts and the given chat.
func (a *app) service(chat task.Chat, dir task.Directory) (*task.Service, error) {
	s := &task.Service{
		Stacks:    a.cfg.Stacks,
		Emoji:     a.cfg.Approval.Emoji,
		Store:     a.store,
		Policy:    a.policy,
		Runner:    a.runner,
		Directory: dir,
		Chat:      chat,
		Masker:    a.masker,
		Log:       a.log,
		Owner:     a.owner,
	}
	return s, s.Validate()
}

// Close releases a's parts in reverse order.
func (a *app) Close() error {
	var errs []error
	for i := len(a.closer) - 1; i >= 0; i-- {
		errs = append(errs, a.closer[i]())
	}
	return errors.Join(errs...)
}

func revealAll(cfg *config.Config) []string {
	var values []string
	for _, s := range cfg.Secrets() {
		values = append(values, s.Reveal())
	}
	return values
}

// newLogger returns a logger whose every line passes the masker, so that no
// code path can log a secret.
func newLogger(out io.Writer, format, level string, m *mask.Masker) (*logrus.Logger, error) {
	lg := logrus.New()
	lg.SetOutput(out)
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	lg.SetLevel(lvl)
	switch format {
	case "json":
		lg.SetFormatter(m.Formatter(&logrus.JSONFormatter{}))
	case "text":
		lg.SetFormatter(m.Formatter(&logrus.TextFormatter{DisableColors: true}))
	default:
		return nil, fmt.Errorf("--log-format: %q is neither json nor text", format)
	}
	return lg, nil
}

// redisPassword returns the password in a Redis URL, or "".
func redisPassword(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	pw, _ := u.User.Password()
	return pw
}
