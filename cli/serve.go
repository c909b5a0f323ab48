package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskbot/taskbot/bot"
	"github.com/taskbot/taskbot/task"
)

// serveOptions are serve's flags; each token and URL has an environment twin.
type serveOptions struct {
	common
	appToken     string
	botToken     string
	apiURL       string
	workers      int
	drainTimeout time.Duration
	leaseTTL     time.Duration
}

func serveCommand(stdio IO) *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Connect to Slack in Socket Mode and handle /task, /lock and /unlock",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.fromEnv(cmd, stdio.Getenv)
			if err := o.validate(); err != nil {
				return err
			}
			return serve(cmd, o, stdio)
		},
	}
	o.common.flags(cmd, "json", "info")
	f := cmd.Flags()
	f.StringVar(&o.appToken, "app-token", "", "Slack app-level token, xapp-… (env SLACK_APP_TOKEN)")
	f.StringVar(&o.botToken, "bot-token", "", "Slack bot token, xoxb-… (env SLACK_BOT_TOKEN)")
	f.StringVar(&o.apiURL, "api-url", "https://slack.com/api/", "Slack Web API base URL (env SLACK_API_URL)")
	f.IntVar(&o.workers, "workers", 32, "/task commands and reactions handled at once, running tasks included; as many other commands besides")
	f.DurationVar(&o.drainTimeout, "drain-timeout", 5*time.Minute, "on SIGTERM, how long running tasks may finish before they are cancelled")
	f.DurationVar(&o.leaseTTL, "lease-ttl", task.DefaultLeaseTTL, "how soon a crashed replica's stacks are free again; every replica must use the same")
	return cmd
}

func (o *serveOptions) fromEnv(cmd *cobra.Command, getenv func(string) string) {
	o.common.fromEnv(cmd, getenv)
	envDefault(cmd, "app-token", &o.appToken, getenv("SLACK_APP_TOKEN"))
	envDefault(cmd, "bot-token", &o.botToken, getenv("SLACK_BOT_TOKEN"))
	envDefault(cmd, "api-url", &o.apiURL, getenv("SLACK_API_URL"))
}

// validate checks the options without connecting anywhere. Its errors name
// the flag and its environment twin, never a token's value.
func (o *serveOptions) validate() error {
	var errs []error
	if !strings.HasPrefix(o.appToken, "xapp-") {
		errs = append(errs, errors.New("--app-token (SLACK_APP_TOKEN): an app-level token starting with xapp- is required"))
	}
	if !strings.HasPrefix(o.botToken, "xoxb-") {
		errs = append(errs, errors.New("--bot-token (SLACK_BOT_TOKEN): a bot token starting with xoxb- is required"))
	}
	if !strings.HasSuffix(o.apiURL, "/") {
		errs = append(errs, fmt.Errorf("--api-url (SLACK_API_URL): %q must end with /", o.apiURL))
	}
	if o.workers < 1 {
		errs = append(errs, errors.New("--workers: must be at least 1"))
	}
	if o.drainTimeout < 0 {
		errs = append(errs, errors.New("--drain-timeout: must not be negative"))
	}
	if o.leaseTTL < time.Second {
		errs = append(errs, errors.New("--lease-ttl: must be at least 1s"))
	}
	return errors.Join(errs...)
}

// serve runs the Slack adapter until the command's context ends.
func serve(cmd *cobra.Command, o serveOptions, stdio IO) error {
	ctx := cmd.Context()
	a, err := open(ctx, o.common, stdio.Err, stdio.Getenv, o.appToken, o.botToken)
	if err != nil {
		return err
	}
	defer a.Close()

	client := bot.NewClient(bot.ClientOptions{AppToken: o.appToken, BotToken: o.botToken, APIURL: o.apiURL}, a.masker, a.log)
	svc, err := a.service(client, client)
	if err != nil {
		return err
	}
	svc.LeaseTTL = o.leaseTTL
	// Containers of replicas that crashed are removed now and from time to
	// time, so that an orphan never runs beside the stack's next task.
	reapCtx, stopReaping := context.WithCancel(ctx)
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		svc.ReapEvery(reapCtx, o.leaseTTL/3)
	}()
	defer func() { stopReaping(); <-reaped }()

	lg := a.log.WithField("stacks", strings.Join(a.cfg.StackNames(), ","))
	b := bot.New(client, svc, a.store, lg, bot.Options{Workers: o.workers, DrainTimeout: o.drainTimeout})
	return b.Run(ctx)
}
