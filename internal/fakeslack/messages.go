package fakeslack

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
)

// Message is a message the app posted, as it currently reads.
type Message struct {
	Channel      string
	TS           string
	ThreadTS     string // the parent's ts for a thread reply; empty for a top-level message
	User         string // the author; BotUserID for everything the app posts
	Text         string
	Blocks       json.RawMessage // nil when the message has none
	Edits        int             // how often chat.update or replace_original changed it
	Ephemeral    bool
	ToUser       string // who sees an ephemeral message
	ResponseType string // "ephemeral" or "in_channel" for replies to a response_url or an ack
}

// unescape undoes the escaping Slack requires in message text.
var unescape = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">")

// Plain returns what a reader sees, for assertions: Text, then every "text"
// string anywhere in Blocks in document order, joined by "\n" with empty
// parts left out, and with &amp; &lt; &gt; unescaped.
func (m Message) Plain() string {
	var parts []string
	if m.Text != "" {
		parts = append(parts, m.Text)
	}
	if len(m.Blocks) > 0 {
		dec := json.NewDecoder(bytes.NewReader(m.Blocks))
		_ = collectTexts(dec, false, &parts) // blocks were validated when posted
	}
	return unescape.Replace(strings.Join(parts, "\n"))
}

// collectTexts walks one JSON value in document order (a map would lose the
// order) and appends the non-empty strings found under "text" keys; isText
// says whether this value is one.
func collectTexts(dec *json.Decoder, isText bool, out *[]string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}

	switch t := tok.(type) {
	case string:
		if isText && t != "" {
			*out = append(*out, t)
		}
	case json.Delim:
		for dec.More() {
			childIsText := false
			if t == '{' {
				key, err := dec.Token()
				if err != nil {
					return err
				}
				childIsText = key == "text"
			}
			if err := collectTexts(dec, childIsText, out); err != nil {
				return err
			}
		}
		_, err = dec.Token() // the closing delimiter
		return err
	}
	return nil
}

// clone returns a copy that shares nothing with m.
func (m *Message) clone() Message {
	c := *m
	c.Blocks = bytes.Clone(m.Blocks)
	return c
}

// wire is the message as Web API answers show it.
func (m *Message) wire() obj {
	o := obj{
		"type":   "message",
		"user":   m.User,
		"bot_id": BotID,
		"team":   TeamID,
		"text":   m.Text,
		"ts":     m.TS,
	}
	if m.ThreadTS != "" {
		o["thread_ts"] = m.ThreadTS
	}
	if m.Blocks != nil {
		o["blocks"] = m.Blocks
	}
	return o
}

// Messages returns the channel messages and thread replies posted in a
// channel, in post order, with their current content.
func (s *Server) Messages(channel string) []Message {
	return s.selectPosts(func(m *Message) bool { return m.Channel == channel })
}

// Thread returns the replies to the message ts in channel, in post order,
// without the parent.
func (s *Server) Thread(channel, ts string) []Message {
	return s.selectPosts(func(m *Message) bool { return m.Channel == channel && m.ThreadTS == ts })
}

// selectPosts copies the channel messages that keep reports true.
func (s *Server) selectPosts(keep func(*Message) bool) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()

	var out []Message
	for _, m := range s.posts {
		if keep(m) {
			out = append(out, m.clone())
		}
	}
	return out
}

// Ephemerals returns the ephemeral messages shown to a user, from
// chat.postEphemeral and from slash command replies, in post order.
func (s *Server) Ephemerals(user string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()

	var out []Message
	for _, m := range s.ephemerals {
		if m.ToUser == user {
			out = append(out, m.clone())
		}
	}
	return out
}

// findLocked returns the channel message or thread reply channel/ts, or nil.
func (s *Server) findLocked(channel, ts string) *Message {
	i := slices.IndexFunc(s.posts, func(m *Message) bool { return m.Channel == channel && m.TS == ts })
	if i < 0 {
		return nil
	}
	return s.posts[i]
}

// reaction is one user's emoji on a message.
type reaction struct {
	user, name string
}

// msgKey identifies a message across channels.
func msgKey(channel, ts string) string {
	return channel + "/" + ts
}

// Reactions returns the emoji names the bot added to a message, in order.
func (s *Server) Reactions(channel, ts string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()

	var names []string
	for _, r := range s.reactions[msgKey(channel, ts)] {
		if r.user == BotUserID {
			names = append(names, r.name)
		}
	}
	return names
}

// addReactionLocked records a reaction, reporting false if the user already
// reacted with that emoji.
func (s *Server) addReactionLocked(user, channel, ts, name string) bool {
	key := msgKey(channel, ts)
	r := reaction{user: user, name: name}
	if slices.Contains(s.reactions[key], r) {
		return false
	}

	s.reactions[key] = append(s.reactions[key], r)
	s.notifyLocked()
	return true
}

// removeReactionLocked forgets a reaction, if it exists.
func (s *Server) removeReactionLocked(user, channel, ts, name string) {
	key := msgKey(channel, ts)
	r := reaction{user: user, name: name}
	s.reactions[key] = slices.DeleteFunc(s.reactions[key], func(o reaction) bool { return o == r })
	s.notifyLocked()
}
