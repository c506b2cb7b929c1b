package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// drainPoll is how often a drain looks at its connections.
const drainPoll = 20 * time.Millisecond

// drain stops accepting and finishes every connection without failing a
// request: see the package documentation. errs yields the result of each
// of the pending Serve loops.
func (s *Server) drain(errs <-chan error, pending int) error {
	start := s.now()
	s.drainStart.Store(start)
	s.draining.Store(true)
	if err := s.notify.Stopping("draining"); err != nil {
		s.log.Error("serve: STOPPING=1 not sent", "err", err)
	}
	var failed []error
	for _, l := range s.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			failed = append(failed, fmt.Errorf("serve: close listener %s: %w", l.Addr(), err))
		}
	}
	// Each Serve returns only after registering the connection it may have
	// just accepted: from here on, every connection is tracked.
	for range pending {
		if err := <-errs; err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
			failed = append(failed, fmt.Errorf("serve: %w", err))
		}
	}
	var limit <-chan time.Time
	if s.drainMax > 0 {
		t := time.NewTimer(s.drainMax)
		defer t.Stop()
		limit = t.C
	}
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	lastStatus, lastSent := "", time.Time{}
	forced := false
	for {
		now := s.now()
		open, active := s.closeQuiet(now)
		if open == 0 {
			break
		}
		if st := fmt.Sprintf("draining: %d connections open, %d active", open, active); st != lastStatus && time.Since(lastSent) >= time.Second {
			lastStatus, lastSent = st, time.Now()
			if err := s.notify.Status(st); err != nil {
				s.log.Error("serve: STATUS= not sent", "err", err)
			}
		}
		if s.wd.enabled() {
			s.maybePing(now)
		}
		select {
		case <-tick.C:
			continue
		case <-limit:
			s.log.Warn("serve: drain timeout; closing the connections still open", "timeout", s.drainMax, "open", open, "active", active)
		case <-s.force:
		}
		forced = true
		s.closeAll()
		break
	}
	// Nothing is left for Shutdown to close: it only marks the server done
	// and runs RegisterOnShutdown hooks.
	if err := s.srv.Shutdown(context.Background()); err != nil && !errors.Is(err, http.ErrServerClosed) {
		failed = append(failed, fmt.Errorf("serve: shutdown: %w", err))
	}
	attrs := []any{"took", time.Duration(s.now() - start).Round(time.Millisecond)}
	if n := s.inflight.Load(); n > 0 {
		// Handlers answered 504 at their deadline that never returned.
		attrs = append(attrs, "handlers_still_running", n)
	}
	if forced {
		s.log.Warn("serve: stopped with connections closed under their clients", attrs...)
	} else {
		s.log.Info("serve: drained", attrs...)
	}
	return errors.Join(failed...)
}
