package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/taskbot/taskbot/internal/fakeslack"
)

// BenchmarkAck sends 50 slash commands back to back and reports the
// latency from envelope sent to ack received, p50 and p99 in ms, for taskbot
// and, as the baseline measured in the same run, for a bare slack-go client
// that does nothing but ack.
func BenchmarkAck(b *testing.B) {
	bt := startBot(b, fakeslack.WithoutRateLimits())
	bare := startBareAcker(b)
	var taskbot, baseline []time.Duration
	for b.Loop() {
		taskbot = append(taskbot, ackLatencies(b, bt.slack, bt.channel)...)
		baseline = append(baseline, ackLatencies(b, bare, bt.channel)...)
	}
	slices.Sort(taskbot)
	slices.Sort(baseline)
	b.ReportMetric(ms(percentile(taskbot, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(taskbot, 99)), "p99-ms")
	b.ReportMetric(ms(percentile(baseline, 99)), "bare-p99-ms")
	b.ReportMetric(float64(percentile(taskbot, 99))/float64(percentile(baseline, 99)), "p99-ratio")
}

// ackLatencies sends 50 /task help commands without waiting in between,
// then collects their ack latencies.
func ackLatencies(b *testing.B, srv *fakeslack.Server, channel string) []time.Duration {
	b.Helper()
	envs := make([]*fakeslack.Envelope, 50)
	for i := range envs {
		env, err := srv.SendSlashCommand(b.Context(), fakeslack.SlashCommand{
			User: alice, Channel: channel, Command: "/task", Text: "help"})
		if err != nil {
			b.Fatal(err)
		}
		envs[i] = env
	}
	latencies := make([]time.Duration, len(envs))
	for i, env := range envs {
		ack, err := env.WaitAck(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		latencies[i] = ack.Latency
	}
	return latencies
}

// startBareAcker connects a slack-go Socket Mode client that acks every
// envelope and does nothing else, to its own stand-in.
func startBareAcker(b *testing.B) *fakeslack.Server {
	b.Helper()
	srv := fakeslack.New(b, fakeslack.WithoutRateLimits())
	api := slack.New(fakeslack.BotToken, slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken(fakeslack.AppToken))
	sm := socketmode.New(api)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go sm.RunContext(ctx)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case evt := <-sm.Events:
				if evt.Request != nil {
					_ = sm.Ack(*evt.Request)
				}
			}
		}
	}()
	if err := srv.WaitConnected(b.Context()); err != nil {
		b.Fatal(err)
	}
	return srv
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
