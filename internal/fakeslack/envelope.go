package fakeslack

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The Socket Mode envelope types the server sends.
const (
	typeSlashCommands = "slash_commands"
	typeEventsAPI     = "events_api"
)

// verificationToken is the deprecated "token" field of slash commands and
// event callbacks.
const verificationToken = "fake-verification-token"

// Envelope is one Socket Mode delivery: a slash command, or an event together
// with its redeliveries.
type Envelope struct {
	ID          string    // envelope_id of the first delivery
	EventID     string    // event_id of an events_api envelope, the same on every retry
	Type        string    // "slash_commands" or "events_api"
	Sent        time.Time // when the first delivery was written to a socket
	ResponseURL string    // response_url of a slash command

	s          *Server
	payload    json.RawMessage
	responseID string        // key of the slash command's response URL in Server.responses
	acked      chan struct{} // closed when ack is set
	ack        *Ack          // guarded by Server.mu
}

// Ack is the client's acknowledgement of an envelope.
type Ack struct {
	EnvelopeID   string          // which delivery was acked
	RetryAttempt int             // 0 for the first delivery
	At           time.Time       // when the server read the ack
	Latency      time.Duration   // At minus the send time of the acked delivery
	Payload      json.RawMessage // nil when the ack carried none
}

// attempt is one delivery of an envelope, awaiting its ack.
type attempt struct {
	env   *Envelope
	retry int
	sent  time.Time
}

// envelopeFrame is an envelope on the wire.
type envelopeFrame struct {
	EnvelopeID             string          `json:"envelope_id"`
	Type                   string          `json:"type"`
	AcceptsResponsePayload bool            `json:"accepts_response_payload"`
	RetryAttempt           *int            `json:"retry_attempt,omitempty"`
	RetryReason            *string         `json:"retry_reason,omitempty"`
	Payload                json.RawMessage `json:"payload"`
}

// WaitAck returns the first ack of any delivery of the envelope, or the
// context's error when it ends first.
func (e *Envelope) WaitAck(ctx context.Context) (Ack, error) {
	select {
	case <-e.acked:
		e.s.mu.Lock()
		defer e.s.mu.Unlock()
		return *e.ack, nil
	case <-ctx.Done():
		return Ack{}, fmt.Errorf("wait for ack of envelope %s: %w", e.ID, ctx.Err())
	}
}

// frame encodes delivery number retry of the envelope under envelope ID id.
func (e *Envelope) frame(id string, retry int) ([]byte, error) {
	f := envelopeFrame{EnvelopeID: id, Type: e.Type, Payload: e.payload}
	if e.Type == typeEventsAPI {
		reason := ""
		if retry > 0 {
			reason = "timeout"
		}
		f.RetryAttempt, f.RetryReason = &retry, &reason
	} else {
		f.AcceptsResponsePayload = true
	}

	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	return b, nil
}

// deliver sends delivery number retry of env under envelope ID id.
func (s *Server) deliver(ctx context.Context, env *Envelope, id string, retry int) error {
	frame, err := env.frame(id, retry)
	if err != nil {
		return err
	}
	return s.send(ctx, frame, func(now time.Time) {
		s.pending[id] = attempt{env: env, retry: retry, sent: now}
		if retry == 0 {
			env.Sent = now
		}
	})
}

// recordAck resolves the delivery an ack names. Acks for unknown or already
// acked envelopes are ignored, as Slack ignores them.
func (s *Server) recordAck(id string, payload json.RawMessage, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()

	a, ok := s.pending[id]
	if !ok {
		return
	}
	delete(s.pending, id)
	if a.env.ack != nil {
		return
	}

	if string(payload) == "null" {
		payload = nil
	}
	a.env.ack = &Ack{
		EnvelopeID:   id,
		RetryAttempt: a.retry,
		At:           at,
		Latency:      at.Sub(a.sent),
		Payload:      payload,
	}
	close(a.env.acked)
	if a.env.Type == typeSlashCommands {
		s.replyFromAckLocked(a.env, payload)
	}
	s.notifyLocked()
}

// replyFromAckLocked shows a message carried by a slash command's ack, as
// Slack shows it in place of an HTTP response body.
func (s *Server) replyFromAckLocked(env *Envelope, payload json.RawMessage) {
	var body responseBody
	if json.Unmarshal(payload, &body) != nil {
		return
	}
	// An ack without a message is the usual case, not an error.
	_ = s.respondLocked(s.responses[env.responseID], body)
}

// SlashCommand is a slash command as a user invokes it.
type SlashCommand struct {
	User    string // user ID of the invoker
	Channel string // channel ID it was invoked in
	Command string // such as "/task"
	Text    string // everything after the command, sent as is: escape it as Slack would
}

// SendSlashCommand delivers a slash_commands envelope to one connected
// client, waiting for a connection if there is none. It fills the fields
// Slack adds: user_name, team_id, channel_name, response_url, trigger_id,
// api_app_id and token. Slash commands are never redelivered.
func (s *Server) SendSlashCommand(ctx context.Context, c SlashCommand) (*Envelope, error) {
	env, err := s.newSlashCommand(c)
	if err != nil {
		return nil, fmt.Errorf("send slash command %s: %w", c.Command, err)
	}
	if err := s.deliver(ctx, env, env.ID, 0); err != nil {
		return nil, fmt.Errorf("send slash command %s: %w", c.Command, err)
	}
	return env, nil
}

// newSlashCommand builds the envelope for c and registers its response URL.
func (s *Server) newSlashCommand(c SlashCommand) (*Envelope, error) {
	s.mu.Lock()
	name, ok := s.users[c.User]
	if !ok {
		name = strings.ToLower(c.User)
	}
	responseID := randomID(12)
	s.responses[responseID] = &responseURL{user: c.User, channel: c.Channel}
	s.mu.Unlock()

	env := &Envelope{
		ID:          newEnvelopeID(),
		Type:        typeSlashCommands,
		ResponseURL: fmt.Sprintf("http://%s/response/%s", s.host(), responseID),
		s:           s,
		responseID:  responseID,
		acked:       make(chan struct{}),
	}
	payload, err := json.Marshal(map[string]string{
		"token":                 verificationToken,
		"team_id":               TeamID,
		"team_domain":           "fake",
		"channel_id":            c.Channel,
		"channel_name":          channelName(c.Channel),
		"user_id":               c.User,
		"user_name":             name,
		"command":               c.Command,
		"text":                  c.Text,
		"api_app_id":            AppID,
		"is_enterprise_install": "false",
		"response_url":          env.ResponseURL,
		"trigger_id":            fmt.Sprintf("%d.%s", time.Now().Unix(), randomID(8)),
	})
	if err != nil {
		return nil, fmt.Errorf("encode payload: %w", err)
	}
	env.payload = payload
	return env, nil
}

// channelName is the name the fake gives every channel: its ID in lower case.
func channelName(id string) string {
	return strings.ToLower(id)
}

// React adds a user's reaction to a message and delivers the reaction_added
// event, waiting for a connection if there is none. item_user is the
// message's author when the server knows the message. Un-acked, the event is
// redelivered like every event. In a conversation the bot is not a member
// of, the reaction is made but, as in Slack, no event is sent: React then
// returns a nil Envelope.
func (s *Server) React(ctx context.Context, user, channel, ts, emoji string) (*Envelope, error) {
	s.mu.Lock()
	s.addReactionLocked(user, channel, ts, emoji)
	env, err := s.reactionEventLocked("reaction_added", user, channel, ts, emoji)
	outside := s.outside[channel]
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("react with %s: %w", emoji, err)
	}
	if outside {
		return nil, nil
	}

	if err := s.sendEvent(ctx, env); err != nil {
		return nil, fmt.Errorf("react with %s: %w", emoji, err)
	}
	return env, nil
}

// Unreact removes a user's reaction from a message and delivers the
// reaction_removed event, as React does.
func (s *Server) Unreact(ctx context.Context, user, channel, ts, emoji string) (*Envelope, error) {
	s.mu.Lock()
	s.removeReactionLocked(user, channel, ts, emoji)
	env, err := s.reactionEventLocked("reaction_removed", user, channel, ts, emoji)
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("remove reaction %s: %w", emoji, err)
	}

	if err := s.sendEvent(ctx, env); err != nil {
		return nil, fmt.Errorf("remove reaction %s: %w", emoji, err)
	}
	return env, nil
}

// sendEvent delivers an event once and leaves its redelivery to a
// background goroutine.
func (s *Server) sendEvent(ctx context.Context, env *Envelope) error {
	if err := s.deliver(ctx, env, env.ID, 0); err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	if !s.goLocked(func() { s.redeliver(env) }) {
		return ErrClosed
	}
	return nil
}

// redeliver resends an un-acked event after every retry delay, with a new
// envelope ID and the same event ID, up to maxRetries times.
func (s *Server) redeliver(env *Envelope) {
	for retry := 1; retry <= maxRetries; retry++ {
		select {
		case <-env.acked:
			return
		case <-s.ctx.Done():
			return
		case <-time.After(s.cfg.retryDelay):
		}

		if s.deliver(s.ctx, env, newEnvelopeID(), retry) != nil {
			return
		}
	}
}

// reactionEventLocked builds a reaction_added or reaction_removed event.
func (s *Server) reactionEventLocked(typ, user, channel, ts, emoji string) (*Envelope, error) {
	event := map[string]any{
		"type":     typ,
		"user":     user,
		"reaction": emoji,
		"item":     map[string]string{"type": "message", "channel": channel, "ts": ts},
		"event_ts": s.newTSLocked(),
	}
	if m := s.findLocked(channel, ts); m != nil {
		event["item_user"] = m.User
	}
	return s.newEventLocked(event)
}

// newEventLocked wraps an inner event in an event_callback envelope with a
// fresh event ID.
func (s *Server) newEventLocked(event map[string]any) (*Envelope, error) {
	s.seq++
	eventID := fmt.Sprintf("Ev0TEST%08d", s.seq)

	payload, err := json.Marshal(map[string]any{
		"token":                 verificationToken,
		"team_id":               TeamID,
		"api_app_id":            AppID,
		"type":                  "event_callback",
		"event_id":              eventID,
		"event_time":            time.Now().Unix(),
		"event_context":         "4-" + randomID(12),
		"is_ext_shared_channel": false,
		"authorizations": []map[string]any{{
			"enterprise_id": nil, "team_id": TeamID, "user_id": BotUserID,
			"is_bot": true, "is_enterprise_install": false,
		}},
		"event": event,
	})
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}

	return &Envelope{
		ID:      newEnvelopeID(),
		EventID: eventID,
		Type:    typeEventsAPI,
		s:       s,
		payload: payload,
		acked:   make(chan struct{}),
	}, nil
}
