package logging

import (
	"strconv"
	"sync"
	"time"
)

// Limiter bounds how often one kind of message is logged, so that a flood
// of bad input (connections, datagrams) cannot flood the log: a burst of
// Burst messages, then one per Every; what it holds back is counted and
// reported with the next message let through.
type Limiter struct {
	burst int
	every time.Duration
	now   func() time.Time

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed int
}

// NewLimiter lets burst messages through at once and one per every after
// that.
func NewLimiter(burst int, every time.Duration) *Limiter {
	return &Limiter{burst: burst, every: every, now: time.Now, tokens: float64(burst)}
}

// Allow reports whether to log a message now and, when it does, how many
// were held back since the last one logged.
func (l *Limiter) Allow() (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.last.IsZero() && l.every > 0 {
		l.tokens += float64(now.Sub(l.last)) / float64(l.every)
		if l.tokens > float64(l.burst) {
			l.tokens = float64(l.burst)
		}
	}
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}

// Suppressed wraps an error let through after others were held back.
type Suppressed struct {
	Err error
	N   int // messages held back before this one
}

func (e *Suppressed) Error() string {
	return e.Err.Error() + " (" + strconv.Itoa(e.N) + " similar messages not logged)"
}

func (e *Suppressed) Unwrap() error { return e.Err }

// Limit returns report behind a Limiter of burst messages and one per
// every after that.
func Limit(burst int, every time.Duration, report func(error)) func(error) {
	l := NewLimiter(burst, every)
	return func(err error) {
		ok, n := l.Allow()
		switch {
		case !ok:
		case n > 0:
			report(&Suppressed{Err: err, N: n})
		default:
			report(err)
		}
	}
}
