package mask

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// benchSecrets returns ten token-like secrets.
func benchSecrets() []string {
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	secrets := make([]string, 10)
	for i := range secrets {
		b := make([]byte, 16+r.IntN(25))
		for j := range b {
			b[j] = alphabet[r.IntN(len(alphabet))]
		}
		secrets[i] = string(b)
	}
	return secrets
}

// benchLog returns 1 MiB of log-like lines; one in a hundred holds a secret.
func benchLog(secrets []string) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	var buf bytes.Buffer
	for i := 0; buf.Len() < 1<<20; i++ {
		fmt.Fprintf(&buf, "2026-03-01T12:%02d:%02dZ aws_instance.web[%d]: Refreshing state... "+
			"[id=i-%016x]", i/60%60, i%60, i%7, r.Uint64())
		if i%100 == 0 {
			fmt.Fprintf(&buf, " token=%s", secrets[r.IntN(len(secrets))])
		}
		buf.WriteByte('\n')
	}
	return buf.Bytes()[:1<<20]
}

func BenchmarkString(b *testing.B) {
	secrets := benchSecrets()
	m := New(secrets...)
	in := string(benchLog(secrets))

	b.SetBytes(int64(len(in)))
	for b.Loop() {
		m.String(in)
	}
}

func BenchmarkWriter(b *testing.B) {
	secrets := benchSecrets()
	m := New(secrets...)
	in := benchLog(secrets)

	for _, chunk := range []int{100, 32 << 10} {
		b.Run(fmt.Sprintf("chunk=%d", chunk), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				w := m.Writer(io.Discard)
				for p := in; len(p) > 0; p = p[min(chunk, len(p)):] {
					w.Write(p[:min(chunk, len(p))])
				}
				w.Flush()
			}
		})
	}
}
