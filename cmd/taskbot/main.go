// Command taskbot runs taskbot: `taskbot serve` for Slack, `taskbot shell`
// to try it in a terminal. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/taskbot/taskbot/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], cli.Stdio())
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "taskbot:", err)
		os.Exit(1)
	}
}
