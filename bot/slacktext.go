package bot

import (
	"errors"
	"strings"
)

// ErrUndecodable is wrapped by DecodeText's errors: the text is not
// something Slack sends, so what the user typed cannot be recovered.
var ErrUndecodable = errors.New("undecodable slash command text")

// DecodeError is the error DecodeText returns. It wraps [ErrUndecodable].
type DecodeError struct {
	// Problem says what could not be read, in words fit to show the user
	// ("a '<' without a closing '>'"). It quotes none of the text, which
	// may hold a secret.
	Problem string
}

// Error implements error, for logs.
func (e *DecodeError) Error() string { return e.Problem + ": " + ErrUndecodable.Error() }

// Unwrap makes errors.Is find [ErrUndecodable].
func (e *DecodeError) Unwrap() error { return ErrUndecodable }

var (
	// unescaper decodes the three entities Slack escapes, once: "&amp;lt;"
	// becomes "&lt;". A Replacer never rescans what it has replaced.
	unescaper = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">")
	escaper   = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
)

// DecodeText turns slash-command text as Slack delivers it into what the
// user typed: it decodes &amp;, &lt; and &gt; (and no other entity) and
// replaces markup in <…> with its label, or with what the user saw: a
// link's URL, "@U123" for a user without a name, "#C123" for a channel.
// Decode exactly once; decoding twice would turn a typed "&lt;" into "<".
// Its errors are *[DecodeError].
func DecodeText(s string) (string, error) {
	var b strings.Builder
	for s != "" {
		// Slack escapes every typed '<' and '>', so a raw one is markup.
		open := strings.IndexAny(s, "<>")
		if open < 0 {
			b.WriteString(unescaper.Replace(s))
			break
		}
		if s[open] == '>' {
			return "", &DecodeError{Problem: "a '>' without an opening '<'"}
		}
		b.WriteString(unescaper.Replace(s[:open]))
		s = s[open+1:]

		end := strings.IndexAny(s, "<>")
		if end < 0 || s[end] == '<' {
			return "", &DecodeError{Problem: "a '<' without a closing '>'"}
		}
		text, err := decodeMarkup(s[:end])
		if err != nil {
			return "", err
		}
		b.WriteString(text)
		s = s[end+1:]
	}
	return b.String(), nil
}

// decodeMarkup returns what the user saw for the markup m, written between
// '<' and '>': a target, then optionally '|' and a label.
func decodeMarkup(m string) (string, error) {
	if m == "" {
		return "", &DecodeError{Problem: "an empty '<>'"}
	}
	target, label, _ := strings.Cut(m, "|")
	target, label = unescaper.Replace(target), unescaper.Replace(label)

	switch m[0] {
	case '@', '#': // <@U123|bob>, <#C123|general>; private channels have no name
		if label != "" {
			return m[:1] + label, nil
		}
		return target, nil
	case '!':
		return decodeSpecial(target[1:], label)
	}
	if label != "" { // a link: <https://x.com|x.com>, <mailto:a@b.c|a@b.c>
		return label, nil
	}
	return target, nil
}

// decodeSpecial returns what the user saw for <!name|label>: a broadcast
// (<!here>), a user group (<!subteam^S123|@ops>) or a date with its
// fallback text (<!date^1392734382^{date}|Feb 18, 2014>).
func decodeSpecial(name, label string) (string, error) {
	switch {
	case name == "here" || name == "channel" || name == "everyone":
		return "@" + name, nil
	case label != "":
		return label, nil
	case strings.HasPrefix(name, "subteam^"):
		return "@" + strings.TrimPrefix(name, "subteam^"), nil
	}
	return "", &DecodeError{Problem: "a special mention ('<!…>') without a label to show"}
}

// EscapeText escapes text we post to Slack: &, < and > become entities, so
// that Slack shows them as typed instead of reading markup. Nothing else is
// escaped.
func EscapeText(s string) string {
	return escaper.Replace(s)
}
