package fakeslack

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// apiError is a Web API error code, answered as {"ok":false,"error":code}.
type apiError string

// Error implements error.
func (e apiError) Error() string { return string(e) }

// obj is a JSON object in an answer.
type obj = map[string]any

// method answers one Web API method: the fields of a successful answer, or
// an apiError.
type method func(s *Server, args url.Values) (obj, error)

// methods are the Web API methods the fake implements, besides
// apps.connections.open, which takes the app token instead of the bot token.
var methods = map[string]method{
	"auth.test":             (*Server).authTest,
	"chat.postMessage":      (*Server).postMessage,
	"chat.update":           (*Server).updateMessage,
	"chat.postEphemeral":    (*Server).postEphemeral,
	"reactions.add":         (*Server).addReaction,
	"users.info":            (*Server).userInfo,
	"usergroups.users.list": (*Server).userGroupMembers,
	"conversations.info":    (*Server).conversationInfo,
}

// serveAPI answers a Web API call. Like Slack it answers HTTP 200 with
// {"ok":…} except when rate limited.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("method")
	s.countCall(name)

	if name == "apps.connections.open" {
		s.openConnection(w, r)
		return
	}
	m, ok := methods[name]
	if !ok {
		writeJSON(w, http.StatusOK, obj{"ok": false, "error": "unknown_method", "req_method": name})
		return
	}
	args, err := readArgs(r)
	if err != nil {
		writeError(w, apiError("invalid_form_data"))
		return
	}
	if err := checkToken(args.Get("token"), r, BotToken); err != nil {
		writeError(w, err)
		return
	}

	if !s.allow(name, args) {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusTooManyRequests, obj{"ok": false, "error": "ratelimited"})
		return
	}

	if err := s.takeFailure(name); err != nil {
		writeError(w, err)
		return
	}
	res, err := m(s, args)
	if err != nil {
		writeError(w, err)
		return
	}
	res["ok"] = true
	writeJSON(w, http.StatusOK, res)
}

// countCall records a call for Calls.
func (s *Server) countCall(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.calls[name]++
	s.notifyLocked()
}

// readArgs returns the arguments of a form-encoded call (what slack-go
// sends) or of a JSON one (what the docs also allow).
func readArgs(r *http.Request) (url.Values, error) {
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType != "application/json" {
		if err := r.ParseForm(); err != nil {
			return nil, fmt.Errorf("parse form: %w", err)
		}
		return r.Form, nil
	}

	var fields map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&fields); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("decode json arguments: %w", err)
	}
	args := r.URL.Query()
	for k, v := range fields {
		// Strings count as their value; anything else as its JSON, the way
		// form-encoded calls carry blocks.
		var str string
		if json.Unmarshal(v, &str) != nil {
			str = string(v)
		}
		args.Set(k, str)
	}
	return args, nil
}

// checkToken accepts a call whose token, from the form or else from
// "Authorization: Bearer", is want.
func checkToken(formToken string, r *http.Request, want string) error {
	token := formToken
	if token == "" {
		token, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}

	switch token {
	case "":
		return apiError("not_authed")
	case want:
		return nil
	default:
		return apiError("invalid_auth")
	}
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do then
}

// writeError answers {"ok":false,"error":code}.
func writeError(w http.ResponseWriter, err error) {
	code := apiError("internal_error")
	errors.As(err, &code)
	writeJSON(w, http.StatusOK, obj{"ok": false, "error": string(code)})
}

// openConnection answers apps.connections.open with a single-use WebSocket
// URL. Slack takes the app token only as a Bearer header.
func (s *Server) openConnection(w http.ResponseWriter, r *http.Request) {
	if err := checkToken("", r, AppToken); err != nil {
		writeError(w, err)
		return
	}

	ticket := randomID(16)
	s.mu.Lock()
	s.tickets[ticket] = true
	s.mu.Unlock()

	link := fmt.Sprintf("ws://%s/link/?ticket=%s&app_id=%s", s.host(), ticket, AppID)
	writeJSON(w, http.StatusOK, obj{"ok": true, "url": link})
}

// authTest answers auth.test as Slack does for the bot token.
func (s *Server) authTest(url.Values) (obj, error) {
	return obj{
		"url":     "https://fake.slack.com/",
		"team":    "Fake",
		"user":    "taskbot",
		"team_id": TeamID,
		"user_id": BotUserID,
		"bot_id":  BotID,
	}, nil
}

// userInfo answers users.info for users added with AddUser.
func (s *Server) userInfo(args url.Values) (obj, error) {
	id := args.Get("user")

	s.mu.Lock()
	name, ok := s.users[id]
	s.mu.Unlock()
	if !ok {
		return nil, apiError("user_not_found")
	}

	return obj{"user": obj{
		"id":        id,
		"team_id":   TeamID,
		"name":      name,
		"real_name": name,
		"deleted":   false,
		"is_bot":    id == BotUserID,
		"tz":        "UTC",
		"profile":   obj{"display_name": name, "real_name": name},
	}}, nil
}

// userGroupMembers answers usergroups.users.list for groups added with
// AddUserGroup.
func (s *Server) userGroupMembers(args url.Values) (obj, error) {
	s.mu.Lock()
	members, ok := s.groups[args.Get("usergroup")]
	s.mu.Unlock()
	if !ok {
		return nil, apiError("no_such_subteam")
	}
	return obj{"users": members}, nil
}

// conversationInfo answers conversations.info: every public (C…) or private
// (G…) channel ID exists, and its name is the ID in lower case.
func (s *Server) conversationInfo(args url.Values) (obj, error) {
	id := args.Get("channel")
	if !strings.HasPrefix(id, "C") && !strings.HasPrefix(id, "G") {
		return nil, apiError("channel_not_found")
	}

	private := strings.HasPrefix(id, "G")
	s.mu.Lock()
	member := !s.outside[id]
	s.mu.Unlock()
	if private && !member {
		return nil, apiError("channel_not_found")
	}
	return obj{"channel": obj{
		"id":          id,
		"name":        channelName(id),
		"is_channel":  !private,
		"is_group":    private,
		"is_private":  private,
		"is_im":       false,
		"is_archived": false,
		"is_member":   member,
		"created":     1700000000,
		"topic":       obj{"value": ""},
		"purpose":     obj{"value": ""},
	}}, nil
}
