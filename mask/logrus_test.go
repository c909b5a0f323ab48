package mask

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"
)

// stringer is a fmt.Stringer field value.
type stringer string

func (s stringer) String() string { return string(s) }

// newLogger returns a logger whose output, formatted by f and masked by m,
// goes to the returned buffer.
func newLogger(tb testing.TB, m *Masker, f logrus.Formatter) (*logrus.Logger, *bytes.Buffer) {
	tb.Helper()

	var buf bytes.Buffer
	l := logrus.New()
	l.Out = &buf
	l.Formatter = m.Formatter(f)
	return l, &buf
}

func TestFormatterJSON(t *testing.T) {
	// The secret holds characters JSON escapes, so only masking before
	// formatting can catch it.
	const secret = `p"<w>&d`
	l, buf := newLogger(t, New(secret), &logrus.JSONFormatter{DisableTimestamp: true})

	l.WithFields(logrus.Fields{
		"token":  secret,
		"err":    errors.New("auth " + secret + " rejected"),
		"url":    stringer("https://u:" + secret + "@x"),
		"count":  3,
		"public": "visible",
	}).Info("login with " + secret)

	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("decode log line %q: %v", buf, err)
	}
	want := map[string]any{
		"level":  "info",
		"msg":    "login with ***",
		"token":  "***",
		"err":    "auth *** rejected",
		"url":    "https://u:***@x",
		"count":  float64(3),
		"public": "visible",
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("masked JSON log line mismatch (-got +want):\n%s", diff)
	}
}

func TestFormatterKeepsEntry(t *testing.T) {
	const secret = "hunter2"
	f := New(secret).Formatter(&logrus.JSONFormatter{})
	e := logrus.NewEntry(logrus.New()).WithField("token", secret)
	e.Message = "using " + secret

	if _, err := f.Format(e); err != nil {
		t.Fatalf("Format() = %v", err)
	}

	want := logrus.Fields{"token": secret}
	if diff := cmp.Diff(e.Data, want); diff != "" || e.Message != "using "+secret {
		t.Errorf("Format changed its entry: message %q, data (-got +want):\n%s",
			e.Message, diff)
	}
}

func TestFormatterText(t *testing.T) {
	const secret = "hunter2"
	l, buf := newLogger(t, New(secret, pem), &logrus.TextFormatter{
		DisableTimestamp: true,
		DisableColors:    true,
	})

	l.WithField("password", secret).Warn("key is\n" + pem)
	l.WithField("user", "bob").Info("no secret here")

	got := buf.String()
	want := "level=warning msg=\"key is\\n***\" password=\"***\"\n" +
		"level=info msg=\"no secret here\" user=bob\n"
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("masked text log mismatch (-got +want):\n%s", diff)
	}
}

// TestFormatterOutput checks the line a formatter writes is masked even
// where the secret comes from the formatter itself, not the entry.
func TestFormatterOutput(t *testing.T) {
	const secret = "hunter2"
	l, buf := newLogger(t, New(secret), &logrus.TextFormatter{
		DisableTimestamp: true,
		DisableColors:    true,
		FieldMap:         logrus.FieldMap{logrus.FieldKeyMsg: "hunter2"},
	})

	l.Info("hello")

	if got := buf.String(); strings.Contains(got, secret) {
		t.Errorf("formatted line leaks the secret: %q", got)
	}
}
