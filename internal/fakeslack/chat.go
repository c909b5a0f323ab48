package fakeslack

import (
	"encoding/json"
	"net/url"
	"strings"
	"unicode/utf8"
)

// maxUpdateText is the longest text chat.update and chat.postEphemeral take.
const maxUpdateText = 4000

// content is the text and blocks of a message as a call gives them.
type content struct {
	text      string
	hasText   bool
	blocks    json.RawMessage // nil when absent or empty
	hasBlocks bool
}

// readContent reads the text and blocks arguments; blocks must be a JSON
// array.
func readContent(args url.Values) (content, error) {
	var c content
	c.text, c.hasText = args.Get("text"), args.Has("text")
	if !args.Has("blocks") {
		return c, nil
	}

	blocks, err := parseBlocks(json.RawMessage(args.Get("blocks")))
	if err != nil {
		return content{}, err
	}
	c.blocks, c.hasBlocks = blocks, true
	return c, nil
}

// parseBlocks checks that raw is a JSON array of blocks and returns it, or
// nil for an empty array or null.
func parseBlocks(raw json.RawMessage) (json.RawMessage, error) {
	var blocks []block
	if json.Unmarshal(raw, &blocks) != nil || len(blocks) > maxBlocks {
		return nil, apiError("invalid_blocks")
	}
	for _, b := range blocks {
		if !b.fits() {
			return nil, apiError("invalid_blocks")
		}
	}
	if len(blocks) == 0 {
		return nil, nil
	}
	return raw, nil
}

// Slack's limits on blocks: 50 to a message, 3,000 characters to a section's
// or a context element's text.
const (
	maxBlocks    = 50
	maxBlockText = 3000
)

// block is what the stand-in checks of a section or context block.
type block struct {
	Text *struct {
		Text string `json:"text"`
	} `json:"text"`
	Elements []struct {
		Text string `json:"text"`
	} `json:"elements"`
}

func (b block) fits() bool {
	if b.Text != nil && utf8.RuneCountInString(b.Text.Text) > maxBlockText {
		return false
	}
	for _, e := range b.Elements {
		if utf8.RuneCountInString(e.Text) > maxBlockText {
			return false
		}
	}
	return true
}

// isChannelID reports whether id names a conversation messages can go to:
// a public channel, a private channel or a direct message.
func isChannelID(id string) bool {
	return strings.HasPrefix(id, "C") || strings.HasPrefix(id, "G") || strings.HasPrefix(id, "D")
}

// postMessage answers chat.postMessage. A thread_ts must be the ts of a
// top-level message in the same channel.
func (s *Server) postMessage(args url.Values) (obj, error) {
	channel := args.Get("channel")
	if !isChannelID(channel) {
		return nil, apiError("channel_not_found")
	}
	c, err := readContent(args)
	if err != nil {
		return nil, err
	}
	if c.text == "" && c.blocks == nil {
		return nil, apiError("no_text")
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	if err := s.checkMemberLocked(channel); err != nil {
		return nil, err
	}
	threadTS := args.Get("thread_ts")
	if threadTS != "" {
		parent := s.findLocked(channel, threadTS)
		if parent == nil || parent.ThreadTS != "" {
			return nil, apiError("thread_not_found")
		}
	}

	m := &Message{
		Channel:  channel,
		TS:       s.newTSLocked(),
		ThreadTS: threadTS,
		User:     BotUserID,
		Text:     c.text,
		Blocks:   c.blocks,
	}
	s.posts = append(s.posts, m)
	s.notifyLocked()
	return obj{"channel": channel, "ts": m.TS, "message": m.wire()}, nil
}

// updateMessage answers chat.update. Arguments left out keep their value;
// an empty blocks array removes the blocks.
func (s *Server) updateMessage(args url.Values) (obj, error) {
	channel, ts := args.Get("channel"), args.Get("ts")
	c, err := readContent(args)
	if err != nil {
		return nil, err
	}
	if c.text == "" && c.blocks == nil {
		return nil, apiError("no_text")
	}
	if utf8.RuneCountInString(c.text) > maxUpdateText {
		return nil, apiError("msg_too_long")
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	if err := s.checkMemberLocked(channel); err != nil {
		return nil, err
	}
	m := s.findLocked(channel, ts)
	if m == nil {
		return nil, apiError("message_not_found")
	}
	if c.hasText {
		m.Text = c.text
	}
	if c.hasBlocks {
		m.Blocks = c.blocks
	}
	m.Edits++
	s.notifyLocked()
	return obj{"channel": channel, "ts": ts, "text": m.Text, "message": m.wire()}, nil
}

// postEphemeral answers chat.postEphemeral.
func (s *Server) postEphemeral(args url.Values) (obj, error) {
	channel, user := args.Get("channel"), args.Get("user")
	if !isChannelID(channel) {
		return nil, apiError("channel_not_found")
	}
	if user == "" {
		return nil, apiError("user_not_in_channel")
	}
	c, err := readContent(args)
	if err != nil {
		return nil, err
	}
	if c.text == "" && c.blocks == nil {
		return nil, apiError("no_text")
	}
	if utf8.RuneCountInString(c.text) > maxUpdateText {
		return nil, apiError("msg_too_long")
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	if err := s.checkMemberLocked(channel); err != nil {
		return nil, err
	}
	m := &Message{
		Channel:   channel,
		TS:        s.newTSLocked(),
		ThreadTS:  args.Get("thread_ts"),
		User:      BotUserID,
		Text:      c.text,
		Blocks:    c.blocks,
		Ephemeral: true,
		ToUser:    user,
	}
	s.ephemerals = append(s.ephemerals, m)
	s.notifyLocked()
	return obj{"message_ts": m.TS}, nil
}

// addReaction answers reactions.add and, as Slack does, sends the app the
// reaction_added event of its own reaction.
func (s *Server) addReaction(args url.Values) (obj, error) {
	name, channel, ts := args.Get("name"), args.Get("channel"), args.Get("timestamp")
	if channel == "" || ts == "" {
		return nil, apiError("no_item_specified")
	}
	// Colons belong around a name in text, not in the argument; skin tones
	// ("thumbsup::skin-tone-2") are the exception.
	if name == "" || strings.HasPrefix(name, ":") || strings.HasSuffix(name, ":") {
		return nil, apiError("invalid_name")
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	if s.findLocked(channel, ts) == nil {
		return nil, apiError("message_not_found")
	}
	if !s.addReactionLocked(BotUserID, channel, ts, name) {
		return nil, apiError("already_reacted")
	}

	env, err := s.reactionEventLocked("reaction_added", BotUserID, channel, ts, name)
	if err != nil {
		return nil, err
	}
	s.goLocked(func() { _ = s.sendEvent(s.ctx, env) }) // fails only when the server closes
	return obj{}, nil
}
