package mask

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeChunks writes the chunks to a Writer one by one, flushes it, and
// returns what reached the underlying writer.
func writeChunks(tb testing.TB, m *Masker, chunks ...string) string {
	tb.Helper()

	var buf bytes.Buffer
	w := m.Writer(&buf)
	for _, c := range chunks {
		n, err := w.Write([]byte(c))
		if err != nil || n != len(c) {
			tb.Fatalf("Write(%q) = %d, %v; want %d, nil", c, n, err, len(c))
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatalf("Flush() = %v", err)
	}
	return buf.String()
}

// checkSplits checks that a Writer fed in split at every byte boundary,
// at every pair of boundaries and byte by byte writes exactly m.String(in).
func checkSplits(t *testing.T, m *Masker, in string) {
	t.Helper()

	want := m.String(in)
	check := func(chunks ...string) {
		t.Helper()
		if got := writeChunks(t, m, chunks...); got != want {
			t.Errorf("Writer fed %q wrote %q, want %q", chunks, got, want)
		}
	}

	for i := range len(in) + 1 {
		for j := i; j <= len(in); j++ {
			check(in[:i], in[i:j], in[j:])
		}
	}
	check(strings.Split(in, "")...) // rune by rune
	var bytewise []string
	for i := range len(in) {
		bytewise = append(bytewise, in[i:i+1])
	}
	check(bytewise...)
}

func TestWriterSplits(t *testing.T) {
	for _, tt := range stringTests {
		t.Run(tt.name, func(t *testing.T) {
			checkSplits(t, New(tt.secrets...), tt.in)
		})
	}
}

// TestWriterHoldsBackMinimum checks what reaches the underlying writer
// before Flush: only a tail that could start a secret may be held back.
func TestWriterHoldsBackMinimum(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		writes  []string
		want    []string // received after each write
		flushed string   // received in the end
	}{
		{"no secrets", nil,
			[]string{"abc", "hunter"}, []string{"abc", "abchunter"}, "abchunter"},
		{"no possible start", []string{"hunter2"},
			[]string{"log line\n", "more "}, []string{"log line\n", "log line\nmore "},
			"log line\nmore "},
		{"tail held", []string{"hunter2"},
			[]string{"pw=hun", "ter2 ok"}, []string{"pw=", "pw=*** ok"}, "pw=*** ok"},
		{"false start released", []string{"hunter2"},
			[]string{"pw=hun", "dred"}, []string{"pw=", "pw=hundred"}, "pw=hundred"},
		{"tail released by flush", []string{"hunter2"},
			[]string{"hunte"}, []string{""}, "hunte"},
		{"longest possible start", []string{"abab"},
			[]string{"xaba"}, []string{"x"}, "xaba"},
		{"shorter secret complete", []string{"abcdef", "bc"},
			[]string{"abc"}, []string{""}, "a***"},
		{"run masked at once", []string{"abcd", "cdef"},
			[]string{"abcd", "ef!"}, []string{"***", "***!"}, "***!"},
		{"complete secret passed", []string{"hunter2"},
			[]string{"hunter2"}, []string{"***"}, "***"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		w := New(tt.secrets...).Writer(&buf)

		var got []string
		for _, p := range tt.writes {
			if _, err := w.Write([]byte(p)); err != nil {
				t.Fatalf("%s: Write(%q) = %v", tt.name, p, err)
			}
			got = append(got, buf.String())
		}
		if diff := cmp.Diff(got, tt.want); diff != "" {
			t.Errorf("%s: received before Flush mismatch (-got +want):\n%s", tt.name, diff)
		}

		if err := w.Flush(); err != nil {
			t.Fatalf("%s: Flush() = %v", tt.name, err)
		}
		if got := buf.String(); got != tt.flushed {
			t.Errorf("%s: received after Flush = %q, want %q", tt.name, got, tt.flushed)
		}
	}
}

func TestWriterFlushEndsStream(t *testing.T) {
	var buf bytes.Buffer
	w := New("hunter2").Writer(&buf)

	for _, p := range []string{"hun", "", "ter2"} {
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatalf("Write(%q) = %v", p, err)
		}
		if p == "" {
			if err := w.Flush(); err != nil {
				t.Fatalf("Flush() = %v", err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("Flush() = %v", err)
	}

	// Flush gives up what it held back, so a secret split by it cannot be
	// recognised: that is why callers flush only at the end of a stream.
	if got, want := buf.String(), "hunter2"; got != want {
		t.Errorf("Writer split by Flush wrote %q, want %q", got, want)
	}
}

func TestWriterConcurrent(t *testing.T) {
	const writers, lines = 4, 50

	var buf bytes.Buffer
	w := New("hunter2", "s3cr3t-token").Writer(&buf)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			for j := range lines {
				fmt.Fprintf(w, "writer %d line %d: hunter2 s3cr3t-token\n", i, j)
			}
		})
	}
	wg.Wait()
	if err := w.Flush(); err != nil {
		t.Fatalf("Flush() = %v", err)
	}

	got := buf.String()
	if strings.Contains(got, "hunter2") || strings.Contains(got, "s3cr3t") {
		t.Errorf("concurrent output leaks a secret:\n%s", got)
	}
	if n := strings.Count(got, "*** ***\n"); n != writers*lines {
		t.Errorf("concurrent output has %d masked lines, want %d", n, writers*lines)
	}
}

// errWriter fails every write.
type errWriter struct{}

var errBroken = errors.New("broken pipe")

func (errWriter) Write([]byte) (int, error) { return 0, errBroken }

func TestWriterError(t *testing.T) {
	w := New("hunter2").Writer(errWriter{})

	if _, err := w.Write([]byte("hello hun")); !errors.Is(err, errBroken) {
		t.Errorf("Write to a broken writer = %v, want %v", err, errBroken)
	}
	if err := w.Flush(); !errors.Is(err, errBroken) {
		t.Errorf("Flush to a broken writer = %v, want %v", err, errBroken)
	}
}

func FuzzWriter(f *testing.F) {
	f.Add("hunter2", "ter2x", "pw=hunter2x hunter2 hunt", []byte{3, 1, 7})
	f.Add("abcd", "cdef", "xabcdefabcdcdef", []byte{1})
	f.Add("aa", "a", "aaaaaba", []byte{2, 0, 1})
	f.Add(pem, "", "MIIEpAIBAAKCAQEA\n"+pem, []byte{5, 11})
	f.Add("пароль", "ль!", "мой пароль!", []byte{1, 2, 3})

	f.Fuzz(func(t *testing.T, secretA, secretB, in string, cuts []byte) {
		m := New(secretA, secretB)

		var chunks []string
		rest := in
		for i := 0; rest != ""; i++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(int(cuts[i%len(cuts)]), n)
			}
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
			if len(cuts) > 0 && i > len(in)+len(cuts) {
				chunks = append(chunks, rest) // all cuts are zero
				break
			}
		}

		if got, want := writeChunks(t, m, chunks...), m.String(in); got != want {
			t.Errorf("Writer fed %q wrote %q, want String's %q", chunks, got, want)
		}
	})
}
