package serve

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// deadliner is what a listener needs so that its accept loop can wake up
// on its own to ping the watchdog: *net.TCPListener and *net.UnixListener
// have it.
type deadliner interface{ SetDeadline(time.Time) error }

// listener wraps one listener so that its accept loop (net/http's
// Server.Serve) drives readiness and the watchdog, and registers every
// connection it accepts.
type listener struct {
	net.Listener
	s        *Server
	dl       deadliner // nil when the listener cannot wake itself
	armed    int64     // the deadline set, in Server.now terms
	entered  atomic.Bool
	inAccept atomic.Bool
	left     atomic.Int64 // when Accept last returned
	closed   atomic.Bool
}

func (s *Server) wrap(l net.Listener) *listener {
	w := &listener{Listener: l, s: s, armed: -1}
	if d, ok := l.(deadliner); ok && s.wd.enabled() {
		w.dl = d
	}
	w.left.Store(s.now())
	return w
}

// Accept is net/http's accept loop calling in. Each entry proves the loop
// is alive; with a watchdog, the listener's deadline wakes the loop when a
// ping is due, so the ping is sent from the serving loop itself.
func (l *listener) Accept() (net.Conn, error) {
	s := l.s
	for {
		l.inAccept.Store(true)
		if !l.entered.Swap(true) {
			s.accepting()
		}
		if l.dl != nil {
			if next := s.wd.next.Load(); next != l.armed {
				// A deadline in the past wakes the loop at once, which
				// then finds the ping sent by another loop and re-arms.
				if err := l.dl.SetDeadline(s.epoch.Add(time.Duration(next))); err == nil {
					l.armed = next
				}
			}
		}
		c, err := l.Listener.Accept()
		now := s.now()
		l.left.Store(now)
		l.inAccept.Store(false)
		if s.wd.enabled() {
			s.maybePing(now)
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !l.closed.Load() {
				continue // our own wake-up, not the caller's business
			}
			return nil, err
		}
		return s.track(c), nil
	}
}

// Close closes the listener; its accept loop then ends.
func (l *listener) Close() error {
	l.closed.Store(true)
	return l.Listener.Close()
}

// alive says whether the accept loop shows life: waiting in Accept, or
// back in it within the interval.
func (l *listener) alive(now int64, within time.Duration) bool {
	return l.closed.Load() || l.inAccept.Load() || now-l.left.Load() <= int64(within)
}

// accepting runs when a listener's accept loop first calls Accept; the
// last of them sends READY=1.
func (s *Server) accepting() {
	if s.waiting.Add(-1) != 0 || s.draining.Load() {
		return
	}
	if err := s.notify.Ready("serving"); err != nil {
		s.log.Error("serve: READY=1 not sent", "err", err)
	}
}
