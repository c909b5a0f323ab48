package bot

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/slack-go/slack"
	"golang.org/x/time/rate"

	"github.com/taskbot/taskbot"
	"github.com/taskbot/taskbot/mask"
	"github.com/taskbot/taskbot/task"
)

// Client is taskbot's side of the Slack Web API: it posts and updates task
// messages, streams output into their threads and looks up user groups. It
// implements task.Chat and task.Directory. Every text it sends passes the
// masker first.
type Client struct {
	api    *slack.Client
	masker *mask.Masker
	log    logrus.FieldLogger
	groups groupCache

	// outputs runs the loops that stream task output; Bot.Run shuts them
	// down when it returns.
	outputs *outputLoops

	// pace spreads the updates of task messages and their output over
	// time: chat.update is limited per workspace, and every running task
	// shares that limit.
	pace *rate.Limiter

	// FlushInterval is how often task output is sent to Slack. Slack
	// allows about one message per second per channel.
	FlushInterval time.Duration

	// OutputHead and OutputTail bound the output a thread shows: the first
	// OutputHead bytes as they come, the last OutputTail bytes at the end.
	OutputHead, OutputTail int
}

var (
	_ task.Chat      = (*Client)(nil)
	_ task.Directory = (*Client)(nil)
)

// ClientOptions configures a Client.
type ClientOptions struct {
	AppToken string // xapp-…, for socket mode
	BotToken string // xoxb-…, for the Web API
	APIURL   string // Web API base URL ending in '/'; "" means Slack's

	// GroupTTL is how long user-group members are cached; zero means a minute.
	GroupTTL time.Duration
}

// NewClient returns a Client. It does not connect.
func NewClient(o ClientOptions, masker *mask.Masker, lg logrus.FieldLogger) *Client {
	opts := []slack.Option{
		slack.OptionAppLevelToken(o.AppToken),
		slack.OptionRetry(5), // waits out 429s as Retry-After says
		slack.OptionLog(log.New(lg.WithField("component", "slack-go").WriterLevel(logrus.DebugLevel), "", 0)),
	}
	if o.APIURL != "" {
		opts = append(opts, slack.OptionAPIURL(o.APIURL))
	}
	ttl := o.GroupTTL
	if ttl == 0 {
		ttl = time.Minute
	}
	return &Client{
		api:           slack.New(o.BotToken, opts...),
		masker:        masker,
		log:           lg,
		groups:        groupCache{ttl: ttl, entries: map[string]groupEntry{}},
		outputs:       newOutputLoops(),
		pace:          rate.NewLimiter(rate.Every(time.Second), 10),
		FlushInterval: time.Second,
		OutputHead:    DefaultOutputHead,
		OutputTail:    DefaultOutputTail,
	}
}

// PostTask implements task.Chat.
func (c *Client) PostTask(ctx context.Context, v task.View) (string, error) {
	text, blocks := renderTask(c.maskView(v))
	var ts string
	// Slack may have posted despite internal_error; posting again would
	// leave a second message that is never updated.
	err := retrySlack(ctx, unsentSlackFault, func() (err error) {
		_, ts, err = c.api.PostMessageContext(ctx, v.Task.Channel,
			slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		return err
	})
	if err != nil {
		return "", postError(v.Task.Channel, err)
	}
	return ts, nil
}

// UpdateTask implements task.Chat.
func (c *Client) UpdateTask(ctx context.Context, v task.View) error {
	text, blocks := renderTask(c.maskView(v))
	err := retrySlack(ctx, passingSlackFault, func() error {
		if err := c.pace.Wait(ctx); err != nil {
			return fmt.Errorf("wait for slack's rate limit: %w", err)
		}
		_, _, _, err := c.api.UpdateMessageContext(ctx, v.Task.Channel, v.Task.MessageTS,
			slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		return err
	})
	if err != nil {
		return fmt.Errorf("chat.update of task %s: %w", v.Task.ID, err)
	}
	return nil
}

// slackRetryDelays are the waits between attempts to show a task's message
// while Slack answers with one of its passing faults: the message is the
// task's state, which must not be left wrong for one bad answer.
var slackRetryDelays = []time.Duration{time.Second, 3 * time.Second, 5 * time.Second}

// retrySlack calls f until it succeeds, fails with an error retryable does
// not accept, or has failed once more than there are delays.
func retrySlack(ctx context.Context, retryable func(error) bool, f func() error) error {
	err := f()
	for _, d := range slackRetryDelays {
		if !retryable(err) || !sleep(ctx, d) {
			return err
		}
		err = f()
	}
	return err
}

// postError explains a channel taskbot cannot post in: the requester can
// fix that by inviting the bot. Other failures stay internal.
func postError(channel string, err error) error {
	var serr slack.SlackErrorResponse
	if errors.As(err, &serr) && (serr.Err == "not_in_channel" || serr.Err == "channel_not_found") {
		return errors.Join(taskbot.Errorf(taskbot.EForbidden,
			"I cannot post in <#%s>, so nothing was run. Invite me with `/invite @taskbot` and try again.",
			channel), err)
	}
	return fmt.Errorf("chat.postMessage in %s: %w", channel, err)
}

// Notify implements task.Chat with chat.postEphemeral.
func (c *Client) Notify(ctx context.Context, channel, user, text string) error {
	_, err := c.api.PostEphemeralContext(ctx, channel, user, slack.MsgOptionText(c.masker.String(text), false))
	if err != nil {
		return fmt.Errorf("chat.postEphemeral to %s: %w", user, err)
	}
	return nil
}

// maskView masks every text of v that came from a person or a policy.
func (c *Client) maskView(v task.View) task.View {
	v.Task.Command = c.masker.String(v.Task.Command)
	v.Task.Detail = c.masker.String(v.Task.Detail)
	reasons := make([]string, len(v.Reasons))
	for i, r := range v.Reasons {
		reasons[i] = c.masker.String(r)
	}
	v.Reasons = reasons
	return v
}

// Respond answers a slash command through its response_url: only the
// requester sees it unless public.
func (c *Client) Respond(ctx context.Context, responseURL, text string, public bool) error {
	kind := slack.ResponseTypeEphemeral
	if public {
		kind = slack.ResponseTypeInChannel
	}
	_, _, err := c.api.PostMessageContext(ctx, "",
		slack.MsgOptionResponseURL(responseURL, kind),
		slack.MsgOptionText(c.masker.String(text), false))
	if err != nil {
		return fmt.Errorf("respond to slash command: %w", err)
	}
	return nil
}

// GroupMembers implements task.Directory with usergroups.users.list,
// cached for a while: group membership rarely changes, and the method is
// rate limited at Tier 2.
func (c *Client) GroupMembers(ctx context.Context, group string) ([]string, error) {
	if members, ok := c.groups.get(group); ok {
		return members, nil
	}
	members, err := c.api.GetUserGroupMembersContext(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("usergroups.users.list %s: %w", group, err)
	}
	c.groups.put(group, members)
	return members, nil
}

// authTest checks the bot token and returns the bot's user ID.
func (c *Client) authTest(ctx context.Context) (string, error) {
	res, err := c.api.AuthTestContext(ctx)
	if err != nil {
		return "", fmt.Errorf("auth.test with the bot token (SLACK_BOT_TOKEN): %w", err)
	}
	return res.UserID, nil
}

// groupCache remembers user-group members for a while.
type groupCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[string]groupEntry // guarded by mu
}

type groupEntry struct {
	members []string
	expires time.Time
}

func (g *groupCache) get(group string) ([]string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e, ok := g.entries[group]
	if !ok || time.Now().After(e.expires) {
		return nil, false
	}
	return e.members, true
}

func (g *groupCache) put(group string, members []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.entries[group] = groupEntry{members: members, expires: time.Now().Add(g.ttl)}
}
