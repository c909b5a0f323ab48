// Package mask replaces secret values with [Mask] wherever taskbot's output
// leaves the process: strings posted to Slack, container output streamed to a
// thread, and formatted log lines.
//
// A secret that occurs more than once, or several secrets whose occurrences
// overlap, never leave a fragment visible: each run of overlapping
// occurrences becomes a single [Mask]. Occurrences that only touch are masked
// one by one.
package mask

import (
	"cmp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Mask is what every masked secret turns into.
const Mask = "***"

// minLineLen is the shortest line of a multi-line secret that is masked on
// its own; shorter lines (blank lines, "==" padding) would mask harmless
// text all over the output.
const minLineLen = 4

// Masker masks a fixed set of secrets. It is immutable after [New] and safe
// for concurrent use.
type Masker struct {
	secrets []string             // distinct, non-empty, longest first
	byFirst [256][]string        // secrets by their first byte, longest first
	pairs   [1 << 16 / 64]uint64 // bit b0<<8|b1 is set if a secret may start with b0 b1
}

// text is what masking reads: a String argument or bytes written to a Writer.
type text interface{ ~string | ~[]byte }

// New returns a Masker for the given secret values. Empty values are
// ignored. A multi-line secret also masks each of its lines of four or more
// characters (surrounding spaces trimmed), because programs such as cat print
// PEM keys line by line and log formats quote or split them at newlines.
func New(secrets ...string) *Masker {
	var all []string
	for _, s := range secrets {
		if s != "" {
			all = append(all, s)
		}
		if strings.Contains(s, "\n") {
			all = append(all, lines(s)...)
		}
	}
	slices.SortFunc(all, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
	})

	m := &Masker{secrets: slices.Compact(all)}
	for _, s := range m.secrets {
		m.byFirst[s[0]] = append(m.byFirst[s[0]], s)
		m.addPairs(s)
	}
	return m
}

// addPairs records the first two bytes of s for the quick test in
// [mayStart]. A one-byte secret may be followed by any byte.
func (m *Masker) addPairs(s string) {
	set := func(b0, b1 byte) {
		k := uint16(b0)<<8 | uint16(b1)
		m.pairs[k>>6] |= 1 << (k & 63)
	}
	if len(s) > 1 {
		set(s[0], s[1])
		return
	}
	for b := range 256 {
		set(s[0], byte(b))
	}
}

// lines returns the lines of s that are long enough to mask on their own.
func lines(s string) []string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		if utf8.RuneCountInString(line) >= minLineLen {
			out = append(out, line)
		}
	}
	return out
}

// String returns s with every secret replaced by [Mask].
func (m *Masker) String(s string) string {
	// Most text holds no secret: answer it without copying.
	i := firstMatch(m, s)
	if i < 0 {
		return s
	}

	out := make([]byte, 0, len(s))
	out = append(out, s[:i]...)
	out, _ = appendMasked(m, out, s[i:], len(s)-i, 0)
	return string(out)
}

// Contains reports whether s holds a secret value. Commands that contain one
// are refused, since they would be stored and shown verbatim.
func (m *Masker) Contains(s string) bool {
	return firstMatch(m, s) >= 0
}

// maskBytes returns p with every secret replaced by [Mask]; p itself if it
// holds none.
func (m *Masker) maskBytes(p []byte) []byte {
	if firstMatch(m, p) < 0 {
		return p
	}
	out, _ := appendMasked(m, nil, p, len(p), 0)
	return out
}

// appendMasked appends to dst the masked form of src[:n] and returns it. The
// secrets considered are those starting before n; they may reach past n.
// cover is how many bytes at the start of src belong to a run of secrets
// that began before src (their mask is already written). appendMasked
// returns the same count for the bytes from n on.
func appendMasked[T text](m *Masker, dst []byte, src T, n, cover int) ([]byte, int) {
	end := cover // the current run covers src[:end]; src[end:] is not written yet
	for i := range n {
		if !mayStart(m, src, i) {
			continue
		}
		l := longestAt(m, src, i)
		switch {
		case l == 0:
		case i < end: // overlaps the run: extend it
			end = max(end, i+l)
		default:
			dst = append(dst, src[end:i]...)
			dst = append(dst, Mask...)
			end = i + l
		}
	}
	if end < n {
		dst = append(dst, src[end:n]...)
	}
	return dst, max(end-n, 0)
}

// firstMatch returns the index of the first secret in src, or -1.
func firstMatch[T text](m *Masker, src T) int {
	for i := range len(src) {
		if mayStart(m, src, i) && longestAt(m, src, i) > 0 {
			return i
		}
	}
	return -1
}

// mayStart is a quick test that rules out most positions where no secret
// starts.
func mayStart[T text](m *Masker, src T, i int) bool {
	if i+1 == len(src) {
		return len(m.byFirst[src[i]]) > 0
	}
	k := uint16(src[i])<<8 | uint16(src[i+1])
	return m.pairs[k>>6]&(1<<(k&63)) != 0
}

// longestAt returns the length of the longest secret at src[i:], or 0.
func longestAt[T text](m *Masker, src T, i int) int {
	for _, s := range m.byFirst[src[i]] {
		if len(src)-i >= len(s) && string(src[i:i+len(s)]) == s {
			return len(s)
		}
	}
	return 0
}

// heldBack returns the length of the longest suffix of p that is a proper
// prefix of some secret: bytes whose masking depends on what comes next.
func (m *Masker) heldBack(p []byte) int {
	if len(m.secrets) == 0 {
		return 0
	}
	for i := max(len(p)-len(m.secrets[0])+1, 0); i < len(p); i++ {
		tail := p[i:]
		for _, s := range m.byFirst[p[i]] {
			if len(s) > len(tail) && s[:len(tail)] == string(tail) {
				return len(tail)
			}
		}
	}
	return 0
}
