// Package fakeslack is an in-process Slack stand-in for end-to-end tests. It
// speaks the real Socket Mode protocol (hello, ping frames, envelopes, acks and
// redelivery of un-acked events) and the Web API methods taskbot calls, so that
// an unmodified slack-go client behaves against it as it does against Slack.
//
// Point the client at it with
//
//	api := slack.New(fakeslack.BotToken, slack.OptionAPIURL(srv.APIURL()),
//		slack.OptionAppLevelToken(fakeslack.AppToken))
//	sm := socketmode.New(api)
//
// then drive it with SendSlashCommand and React, and inspect what the bot
// posted with Messages, Thread, Ephemerals and Reactions.
package fakeslack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// The credentials and identifiers of the fake workspace.
const (
	// AppToken is the only app-level token apps.connections.open accepts.
	AppToken = "xapp-1-A0TEST-1-fake"
	// BotToken is the only bot token the Web API accepts.
	BotToken = "xoxb-fake-bot-token"
	// BotUserID is the bot's user ID, as auth.test reports it.
	BotUserID = "U0BOT"
	// BotID is the bot's bot ID, as auth.test and posted messages report it.
	BotID = "B0BOT"
	// TeamID is the fake workspace's ID.
	TeamID = "T0TEST"
	// AppID is the fake app's ID, sent as api_app_id.
	AppID = "A0TEST"
)

// ErrClosed is returned by calls that wait for a connection when the server
// shuts down first.
var ErrClosed = errors.New("fakeslack: server closed")

// pollInterval is the backstop for WaitFor, in case a condition depends on
// something other than the server's state (such as the clock).
const pollInterval = 50 * time.Millisecond

// maxRetries is how often Slack redelivers an un-acked events_api envelope.
const maxRetries = 3

// config holds what the options set.
type config struct {
	pingInterval time.Duration
	retryDelay   time.Duration
	rateLimits   bool
}

// Option configures a Server.
type Option func(*config)

// WithPingInterval sets how often the server sends WebSocket ping control
// frames on each connection (default 5s). slack-go reconnects when it sees no
// ping for 30s.
func WithPingInterval(d time.Duration) Option {
	return func(c *config) { c.pingInterval = d }
}

// WithRetryDelay sets how long the server waits for the ack of an events_api
// envelope before redelivering it (default 3s, as Slack; at most 3 retries).
func WithRetryDelay(d time.Duration) Option {
	return func(c *config) { c.retryDelay = d }
}

// WithoutRateLimits turns off the chat.postMessage and chat.update rate limits,
// which are on by default as in real Slack.
func WithoutRateLimits() Option {
	return func(c *config) { c.rateLimits = false }
}

// Server is a running fake Slack. Its methods are safe for concurrent use.
type Server struct {
	cfg    config
	http   *httptest.Server
	ctx    context.Context // cancelled by close, ending every wait
	cancel context.CancelFunc
	wg     sync.WaitGroup // connection handlers and event deliveries; Add only under mu

	mu         sync.Mutex
	closed     bool                    // guarded by mu
	changed    chan struct{}           // guarded by mu; closed and replaced on every state change
	conns      []*conn                 // guarded by mu; every open socket, routable or not
	nextConn   int                     // guarded by mu; round-robin cursor
	tickets    map[string]bool         // guarded by mu; issued, unused apps.connections.open tickets
	pending    map[string]attempt      // guarded by mu; un-acked deliveries by envelope_id
	responses  map[string]*responseURL // guarded by mu; by response_url ID
	posts      []*Message              // guarded by mu; channel messages in post order
	ephemerals []*Message              // guarded by mu
	reactions  map[string][]reaction   // guarded by mu; by msgKey
	users      map[string]string       // guarded by mu; user ID to name
	groups     map[string][]string     // guarded by mu; user group ID to members
	calls      map[string]int          // guarded by mu
	failures   map[string][]string     // guarded by mu; errors the next calls of a method answer
	outside    map[string]bool         // guarded by mu; conversations the bot is not a member of
	limits     limits                  // guarded by mu
	lastTS     int64                   // guarded by mu; microseconds of the last ts issued
	seq        int                     // guarded by mu; counter for event and connection IDs
}

// New starts a fake Slack on 127.0.0.1. tb.Cleanup closes it, ending every
// connection and background delivery.
func New(tb testing.TB, opts ...Option) *Server {
	tb.Helper()

	cfg := config{pingInterval: 5 * time.Second, retryDelay: 3 * time.Second, rateLimits: true}
	for _, opt := range opts {
		opt(&cfg)
	}

	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg,
		ctx:       ctx,
		cancel:    cancel,
		changed:   make(chan struct{}),
		tickets:   map[string]bool{},
		pending:   map[string]attempt{},
		responses: map[string]*responseURL{},
		reactions: map[string][]reaction{},
		users:     map[string]string{BotUserID: "taskbot"},
		groups:    map[string][]string{},
		calls:     map[string]int{},
		failures:  map[string][]string{},
		outside:   map[string]bool{},
		limits:    newLimits(),
	}
	s.http = httptest.NewServer(s.routes())
	tb.Cleanup(s.close)
	return s
}

// routes maps the three URL spaces: the Web API, Socket Mode links and
// response URLs.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/{method}", s.serveAPI)
	mux.HandleFunc("/link/", s.serveLink)
	mux.HandleFunc("/response/{id}", s.serveResponseURL)
	return mux
}

// close stops accepting work, closes every socket and waits for the
// goroutines the server started.
func (s *Server) close() {
	s.mu.Lock()
	s.closed = true
	conns := append([]*conn(nil), s.conns...)
	s.mu.Unlock()

	s.cancel()
	s.http.Close()
	for _, c := range conns {
		c.close()
	}
	s.wg.Wait()
}

// goLocked runs f in a goroutine that close waits for, unless the server is
// closed. Calling wg.Add under mu, after checking closed, keeps it from racing
// with close's Wait.
func (s *Server) goLocked(f func()) bool {
	if s.closed {
		return false
	}
	s.wg.Go(f)
	return true
}

// APIURL returns the Web API base URL for slack.OptionAPIURL, ending in '/'.
func (s *Server) APIURL() string {
	return s.http.URL + "/api/"
}

// host is the server's "127.0.0.1:PORT".
func (s *Server) host() string {
	return strings.TrimPrefix(s.http.URL, "http://")
}

// AddUser makes users.info know a user, and names the user in slash commands.
func (s *Server) AddUser(id, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.users[id] = name
	s.notifyLocked()
}

// AddUserGroup makes usergroups.users.list answer for the group id with the
// given members, replacing any earlier members.
func (s *Server) AddUserGroup(id string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.groups[id] = append([]string{}, members...)
	s.notifyLocked()
}

// Calls reports how many times a Web API method was called, including calls
// that failed or were rate limited.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()

	return s.calls[method]
}

// RemoveBot makes the bot a non-member of channel, as it is before someone
// invites it. As in Slack, it then may not post there (not_in_channel, or
// channel_not_found where it cannot even see the conversation: a private
// channel or a DM), and no events from there reach it. The bot is a member
// of every other conversation.
func (s *Server) RemoveBot(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outside[channel] = true
}

// checkMemberLocked refuses a post to a conversation the bot is not in.
func (s *Server) checkMemberLocked(channel string) error {
	switch {
	case !s.outside[channel]:
		return nil
	case strings.HasPrefix(channel, "C"):
		return apiError("not_in_channel")
	default:
		return apiError("channel_not_found")
	}
}

// FailNext makes the next n calls of method answer {"ok":false,"error":code}
// with HTTP 200, as Slack does for its own passing faults (internal_error,
// service_unavailable) as well as for lasting ones.
func (s *Server) FailNext(method, code string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures[method] = append(s.failures[method], code)
	}
}

// takeFailure returns the error the call of method must answer, if any.
func (s *Server) takeFailure(method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	codes := s.failures[method]
	if len(codes) == 0 {
		return nil
	}
	s.failures[method] = codes[1:]
	return apiError(codes[0])
}

// WaitFor returns once cond reports true, re-checking it whenever the
// server's state changes, or the context's error when it ends first. cond
// may call the Server's methods.
func (s *Server) WaitFor(ctx context.Context, cond func() bool) error {
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()

	for {
		// Take the change channel before checking, so that a change made
		// after the check still wakes us.
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()

		if cond() {
			return nil
		}

		select {
		case <-changed:
		case <-poll.C:
		case <-ctx.Done():
			return fmt.Errorf("wait for condition: %w", ctx.Err())
		}
	}
}

// notifyLocked wakes every WaitFor.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// newTSLocked returns a message timestamp "<unix seconds>.<6 digits>" that is
// later than every one issued before.
func (s *Server) newTSLocked() string {
	micros := max(time.Now().UnixMicro(), s.lastTS+1)
	s.lastTS = micros
	return fmt.Sprintf("%d.%06d", micros/1e6, micros%1e6)
}

// randomID returns n random bytes in hex.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// newEnvelopeID returns a UUID-shaped envelope ID, as Slack sends.
func newEnvelopeID() string {
	h := randomID(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
