package fakeslack

import (
	"encoding/json"
	"net/http"
	"slices"
)

// maxResponseURLUses is how often Slack lets an app use one response_url.
const maxResponseURLUses = 5

// responseURL is the response_url of one slash command.
type responseURL struct {
	user    string   // the invoker, who sees ephemeral replies
	channel string   // where the command was invoked
	uses    int      // guarded by Server.mu
	last    *Message // guarded by Server.mu; the latest reply, which replace_original changes
}

// responseBody is what an app POSTs to a response_url.
type responseBody struct {
	Text            string          `json:"text"`
	Blocks          json.RawMessage `json:"blocks"`
	ResponseType    string          `json:"response_type"`
	ReplaceOriginal bool            `json:"replace_original"`
	DeleteOriginal  bool            `json:"delete_original"`
	ThreadTS        string          `json:"thread_ts"`
}

// serveResponseURL records a reply posted to a slash command's response_url.
// slack-go requires a Content-Type on the answer, which writeJSON sets.
func (s *Server) serveResponseURL(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, obj{"ok": false, "error": "invalid_post_type"})
		return
	}
	var body responseBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, obj{"ok": false, "error": "invalid_payload"})
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	ru, ok := s.responses[r.PathValue("id")]
	if !ok {
		writeJSON(w, http.StatusNotFound, obj{"ok": false, "error": "no_service"})
		return
	}
	if ru.uses >= maxResponseURLUses {
		writeError(w, apiError("used_url"))
		return
	}
	if err := s.respondLocked(ru, body); err != nil {
		writeError(w, err)
		return
	}
	ru.uses++
	writeJSON(w, http.StatusOK, obj{"ok": true})
}

// respondLocked applies a reply to a slash command: deleting or replacing
// the previous reply, or posting a new one, ephemeral to the invoker unless
// response_type is "in_channel". The invoker's own command message is never
// touched, as in Slack.
func (s *Server) respondLocked(ru *responseURL, body responseBody) error {
	var blocks json.RawMessage
	if len(body.Blocks) > 0 {
		var err error
		if blocks, err = parseBlocks(body.Blocks); err != nil {
			return err
		}
	}

	switch {
	case body.DeleteOriginal:
		s.removeLocked(ru.last)
		ru.last = nil
	case body.Text == "" && blocks == nil:
		return apiError("no_text")
	case body.ReplaceOriginal && ru.last != nil:
		ru.last.Text, ru.last.Blocks = body.Text, blocks
		ru.last.Edits++
	default:
		ru.last = s.postReplyLocked(ru, body, blocks)
	}
	s.notifyLocked()
	return nil
}

// postReplyLocked records a new reply to a slash command.
func (s *Server) postReplyLocked(
	ru *responseURL, body responseBody, blocks json.RawMessage,
) *Message {
	m := &Message{
		Channel:      ru.channel,
		TS:           s.newTSLocked(),
		ThreadTS:     body.ThreadTS,
		User:         BotUserID,
		Text:         body.Text,
		Blocks:       blocks,
		ResponseType: body.ResponseType,
	}
	if body.ResponseType == "in_channel" {
		s.posts = append(s.posts, m)
		return m
	}

	m.ResponseType = "ephemeral"
	m.Ephemeral, m.ToUser = true, ru.user
	s.ephemerals = append(s.ephemerals, m)
	return m
}

// removeLocked deletes a message wherever it is; nil is a no-op.
func (s *Server) removeLocked(m *Message) {
	if m == nil {
		return
	}
	same := func(o *Message) bool { return o == m }
	s.posts = slices.DeleteFunc(s.posts, same)
	s.ephemerals = slices.DeleteFunc(s.ephemerals, same)
}
