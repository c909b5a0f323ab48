package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/taskbot/taskbot/internal/fakeslack"
)

// BenchmarkAck sends 50 slash commands back to back and reports the
// latency from envelope sent to ack received: p50 and p99, in ms.
func BenchmarkAck(b *testing.B) {
	bt := startBot(b, fakeslack.WithoutRateLimits())
	var latencies []time.Duration
	for b.Loop() {
		envs := make([]*fakeslack.Envelope, 50)
		for i := range envs {
			env, err := bt.slack.SendSlashCommand(b.Context(), fakeslack.SlashCommand{
				User: alice, Channel: bt.channel, Command: "/task", Text: "help"})
			if err != nil {
				b.Fatal(err)
			}
			envs[i] = env
		}
		for _, env := range envs {
			ack, err := env.WaitAck(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			latencies = append(latencies, ack.Latency)
		}
	}
	slices.Sort(latencies)
	b.ReportMetric(ms(percentile(latencies, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(latencies, 99)), "p99-ms")
	b.ReportMetric(float64(len(latencies)), "acks")
}

// BenchmarkTaskVsDockerRun times `/task bench true` from the slash command
// sent to the final status posted, interleaved with `docker run --rm IMAGE
// true`, and reports both medians and their ratio. The stand-in's rate
// limits are off: this measures taskbot, not Slack's throttling.
func BenchmarkTaskVsDockerRun(b *testing.B) {
	bt := startBot(b, fakeslack.WithoutRateLimits())
	const rounds = 15
	var tasks, runs []time.Duration
	for b.Loop() {
		for i := range rounds {
			runs = append(runs, timeDockerRun(b, bt.image))
			tasks = append(tasks, bt.timeTask(b, fmt.Sprintf("true # %d-%d", len(tasks), i)))
		}
	}
	slices.Sort(tasks)
	slices.Sort(runs)
	task, run := percentile(tasks, 50), percentile(runs, 50)
	b.ReportMetric(ms(task), "task-median-ms")
	b.ReportMetric(ms(run), "docker-run-median-ms")
	b.ReportMetric(float64(task)/float64(run), "ratio")
}

// timeTask runs command as a task and returns how long until its final
// status was posted.
func (b *bot) timeTask(tb testing.TB, command string) time.Duration {
	tb.Helper()
	start := time.Now()
	b.slash(tb, alice, "/task", "bench "+command)
	m := b.waitTask(tb, command)
	if !ended(m) {
		tb.Fatalf("task %q did not end", command)
	}
	return time.Since(start)
}

func timeDockerRun(tb testing.TB, image string) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), time.Minute)
	defer cancel()
	start := time.Now()
	if out, err := exec.CommandContext(ctx, "docker", "run", "--rm", image, "true").CombinedOutput(); err != nil {
		tb.Fatalf("docker run: %v: %s", err, out)
	}
	return time.Since(start)
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
