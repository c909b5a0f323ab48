// Package cli is taskbot's command line: it parses flags and environment,
// wires the packages together and runs serve, shell or an admin command.
// cmd/taskbot only calls Run, so tests can start taskbot in-process.
package cli

import (
	"context"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// IO is what a run of taskbot reads from and writes to.
type IO struct {
	In     io.Reader
	Out    io.Writer
	Err    io.Writer
	Getenv func(string) string
}

// Stdio returns the process's standard streams and environment.
func Stdio() IO {
	return IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Getenv: os.Getenv}
}

// Run runs taskbot with args, which exclude the program name, until the
// command is done or ctx ends.
func Run(ctx context.Context, args []string, stdio IO) error {
	root := &cobra.Command{
		Use:           "taskbot",
		Short:         "Run one-off commands against infrastructure stacks from Slack, safely",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	root.AddCommand(serveCommand(stdio), shellCommand(stdio), checkCommand(stdio), auditCommand(stdio))
	return root.ExecuteContext(ctx)
}
