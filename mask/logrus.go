package mask

import (
	"fmt"
	"maps"

	"github.com/sirupsen/logrus"
)

// Formatter wraps f so that every log line it formats is masked. Message and
// string, error and fmt.Stringer fields are masked before f formats them
// (JSON would otherwise escape a secret holding '"', '<' or a newline
// beyond recognition), and the formatted line is masked again, so that
// redaction does not depend on each call site's care.
func (m *Masker) Formatter(f logrus.Formatter) logrus.Formatter {
	return &formatter{m: m, next: f}
}

// formatter is the logrus.Formatter that Formatter returns.
type formatter struct {
	m    *Masker
	next logrus.Formatter
}

// Format implements logrus.Formatter.
func (f *formatter) Format(e *logrus.Entry) ([]byte, error) {
	line, err := f.next.Format(f.maskEntry(e))
	if err != nil {
		return nil, fmt.Errorf("format log entry: %w", err)
	}

	return f.m.maskBytes(line), nil
}

// maskEntry returns e itself if it holds no secret, and otherwise a copy
// with the secrets masked. The caller's entry and its Data stay untouched.
func (f *formatter) maskEntry(e *logrus.Entry) *logrus.Entry {
	var data logrus.Fields // a masked copy of e.Data, made on the first secret
	for k, v := range e.Data {
		if s, ok := f.maskValue(v); ok {
			if data == nil {
				data = maps.Clone(e.Data)
			}
			data[k] = s
		}
	}

	msg := f.m.String(e.Message)
	if data == nil && msg == e.Message {
		return e
	}

	masked := *e
	masked.Message = msg
	if data != nil {
		masked.Data = data
	}
	return &masked
}

// maskValue returns the masked text of a field value that renders as text
// and holds a secret.
func (f *formatter) maskValue(v any) (string, bool) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case error:
		s = v.Error()
	case fmt.Stringer:
		s = v.String()
	default:
		return "", false
	}

	if !f.m.Contains(s) {
		return "", false
	}
	return f.m.String(s), true
}
