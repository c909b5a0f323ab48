package mask

import (
	"fmt"
	"io"
	"sync"
)

// Writer is an io.Writer that masks a stream before passing it on: a secret
// split across two Write calls is still masked. To do that it holds back the
// end of a write only while that end could be the start of a secret, and
// never more. Call [Writer.Flush] at the end of the stream. A Writer is safe
// for concurrent use.
type Writer struct {
	m *Masker
	w io.Writer

	mu      sync.Mutex
	pending []byte // guarded by mu; input held back, at most the longest secret
	cover   int    // guarded by mu; bytes of pending already inside a masked run
	out     []byte // guarded by mu; reused output buffer
}

// Writer returns a Writer that masks what is written to it and writes the
// result to w.
func (m *Masker) Writer(w io.Writer) *Writer {
	return &Writer{m: m, w: w}
}

// Write masks p and writes to the underlying writer everything that no
// later write can change. It returns len(p) on success.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()

	w.pending = append(w.pending, p...)
	ready := len(w.pending) - w.m.heldBack(w.pending)
	if err := w.emitLocked(ready); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush masks and writes what was held back. It ends the stream: a later
// Write starts a new one.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()

	err := w.emitLocked(len(w.pending))
	w.cover = 0
	return err
}

// emitLocked masks and writes pending[:n] and keeps the rest pending.
func (w *Writer) emitLocked(n int) error {
	w.out, w.cover = appendMasked(w.m, w.out[:0], w.pending, n, w.cover)
	w.pending = w.pending[:copy(w.pending, w.pending[n:])]
	if len(w.out) == 0 {
		return nil
	}

	if _, err := w.w.Write(w.out); err != nil {
		return fmt.Errorf("write masked output: %w", err)
	}
	return nil
}
