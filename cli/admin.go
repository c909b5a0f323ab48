package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/config"
	"github.com/taskbot/taskbot/policy"
	"github.com/taskbot/taskbot/store"
)

// checkCommand validates a configuration and its policies without
// connecting to anything: for CI of the config repository.
func checkCommand(stdio IO) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration, compile the policies and run their Rego tests",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			envDefault(cmd, "config", &path, stdio.Getenv("TASKBOT_CONFIG"))
			cfg, err := config.Load(path, stdio.Getenv)
			if err != nil {
				return err // it names the file
			}
			if _, err := policy.Load(cmd.Context(), cfg.Policies); err != nil {
				return fmt.Errorf("load policies: %w", err)
			}
			if cfg.Policies != "" {
				err := policy.Test(cmd.Context(), cfg.Policies)
				if errors.Is(err, policy.ErrNoTests) {
					fmt.Fprintf(stdio.Out, "warning: no Rego tests (*_test.rego) in %s\n", cfg.Policies)
				} else if err != nil {
					return fmt.Errorf("policy tests: %w", err)
				}
			}
			fmt.Fprintf(stdio.Out, "ok: %d stacks, policies %q\n", len(cfg.Stacks), cfg.Policies)
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "taskbot.yaml", "path of the YAML configuration file (env TASKBOT_CONFIG)")
	return cmd
}

// auditCommand prints the latest audit events as JSON lines.
func auditCommand(stdio IO) *cobra.Command {
	var (
		url, prefix string
		n           int
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Print the latest audit events as JSON lines",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 1 {
				return fmt.Errorf("--limit (-n): must be at least 1, not %d", n)
			}
			if url == "" {
				url = stdio.Getenv("REDIS_URL")
			}
			if url == "" {
				return fmt.Errorf("--redis-url (REDIS_URL): required; the embedded store keeps no audit log across runs")
			}
			st, err := store.Open(cmd.Context(), url, prefix)
			if err != nil {
				return err
			}
			defer st.Close()
			events, err := st.Events(cmd.Context(), n)
			if err != nil {
				return fmt.Errorf("read audit log: %w", err)
			}
			for _, ev := range events {
				if _, err := fmt.Fprintf(stdio.Out, "%s\n", auditLine(ev)); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "redis-url", "", "Redis URL (env REDIS_URL)")
	f.StringVar(&prefix, "prefix", "taskbot:", "Redis key prefix")
	f.IntVarP(&n, "limit", "n", 50, "how many of the latest events")
	return cmd
}

// auditLine renders ev as one JSON object whose keys keep the stream's
// order, which encoding a map would lose.
func auditLine(ev taskbot.Event) []byte {
	kv := []string{"id", ev.ID, "type", string(ev.Type), "task_id", ev.TaskID, "stack", ev.Stack,
		"user", ev.User, "time", ev.Time.UTC().Format(time.RFC3339Nano)}
	for _, f := range ev.Fields {
		kv = append(kv, f.Key, f.Value)
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv[i])
		v, _ := json.Marshal(kv[i+1])
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes()
}
