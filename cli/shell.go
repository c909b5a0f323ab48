package cli

import (
	"fmt"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/taskbot/taskbot/shell"
)

var userIDPattern = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)

func shellCommand(stdio IO) *cobra.Command {
	var (
		o    common
		user string
	)
	cmd := &cobra.Command{
		Use:   "shell",
		Short: "Chat with taskbot in the terminal: each input line is a slash command",
		Long: `Chat with taskbot in the terminal, without Slack. Each input line is a slash
command (/task dev echo hi, /lock dev, /unlock dev). Tasks run in the background
and print under their task; at the end of input the shell waits for them.
Two shell-only commands help try approvals: /user U… changes who you are, and
/react <task> <emoji> reacts to a task's message.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.fromEnv(cmd, stdio.Getenv)
			if !userIDPattern.MatchString(user) {
				return fmt.Errorf("--user: %q is not a Slack user ID (U…)", user)
			}
			a, err := open(cmd.Context(), o, stdio.Err, stdio.Getenv)
			if err != nil {
				return err
			}
			defer a.Close()

			chat := shell.NewChat(stdio.Out, a.masker)
			svc, err := a.service(chat, chat)
			if err != nil {
				return err
			}
			return shell.New(chat, svc, user, a.log).Run(cmd.Context(), stdio.In)
		},
	}
	o.flags(cmd, "text", "warn")
	cmd.Flags().StringVar(&user, "user", "", "the Slack user ID you act as, e.g. U0DEMO (required)")
	return cmd
}
