package fakeslack

import (
	"net/url"
	"time"
)

// Slack's limits as the fake enforces them: chat.postMessage about one
// message per second per channel after a short burst, chat.update Tier 3
// (50+ a minute) per workspace.
const (
	postBurst   = 8
	updateBurst = 20
	refillRate  = 1.0 // tokens per second, for both
)

// limits holds the token buckets.
type limits struct {
	post   map[string]*bucket // by channel
	update bucket
}

// newLimits returns full buckets.
func newLimits() limits {
	return limits{post: map[string]*bucket{}}
}

// bucket is a token bucket that refills at refillRate.
type bucket struct {
	tokens float64
	last   time.Time // zero until first use, when the bucket starts full
}

// take spends a token if one is left.
func (b *bucket) take(now time.Time, burst float64) bool {
	if b.last.IsZero() {
		b.tokens = burst
	} else {
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*refillRate)
	}
	b.last = now

	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// allow reports whether a call to method may go ahead, spending a token of
// its bucket.
func (s *Server) allow(method string, args url.Values) bool {
	if !s.cfg.rateLimits {
		return true
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	now := time.Now()
	switch method {
	case "chat.postMessage":
		channel := args.Get("channel")
		b, ok := s.limits.post[channel]
		if !ok {
			b = &bucket{}
			s.limits.post[channel] = b
		}
		return b.take(now, postBurst)
	case "chat.update":
		return s.limits.update.take(now, updateBurst)
	default:
		return true
	}
}
