package serve

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// watchdog paces WATCHDOG=1 at half the manager's interval.
type watchdog struct {
	interval time.Duration // between pings; 0: no watchdog
	next     atomic.Int64  // when the next ping is due (Server.now)
	withheld atomic.Bool   // the last due ping was withheld
}

func (w *watchdog) enabled() bool { return w.interval > 0 }

// watchdogInterval reads WATCHDOG_USEC as sd_watchdog_enabled(3) does: it
// applies to this process unless WATCHDOG_PID names another one. Pings go
// at half of it.
func watchdogInterval() (time.Duration, error) {
	v, ok := os.LookupEnv("WATCHDOG_USEC")
	if !ok || v == "" {
		return 0, nil
	}
	if p, ok := os.LookupEnv("WATCHDOG_PID"); ok && p != "" {
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return 0, fmt.Errorf("WATCHDOG_PID=%q: not a pid", p)
		}
		if pid != os.Getpid() {
			return 0, nil // the watchdog is another process's
		}
	}
	usec, err := strconv.ParseUint(v, 10, 63)
	if err != nil || usec == 0 || usec > uint64(time.Duration(1<<62).Microseconds()) {
		return 0, fmt.Errorf("WATCHDOG_USEC=%q: want a positive number of microseconds", v)
	}
	return time.Duration(usec) * time.Microsecond / 2, nil
}

// maybePing sends WATCHDOG=1 if one is due and the server shows progress.
// Whoever finds it due first (an accept loop, the drain, the fallback
// ticker) takes it, so it is sent once per interval.
func (s *Server) maybePing(now int64) {
	next := s.wd.next.Load()
	if now < next || !s.wd.next.CompareAndSwap(next, now+int64(s.wd.interval)) {
		return
	}
	if why := s.stuck(now); why != "" {
		if !s.wd.withheld.Swap(true) {
			s.log.Warn("serve: withholding WATCHDOG=1: "+why, "interval", s.wd.interval*2)
		}
		return
	}
	if s.wd.withheld.Swap(false) {
		s.log.Info("serve: progress again; resuming WATCHDOG=1")
	}
	if err := s.notify.Watchdog(); err != nil {
		s.log.Error("serve: WATCHDOG=1 not sent", "err", err)
	}
}

// stuck says why the server shows no progress, or "". The evidence:
//   - every accept loop is alive: waiting in Accept, or back in it within
//     the interval (a loop wedged between accepts is not);
//   - requests are not stuck: a request past its deadline while no request
//     at all completed for a whole deadline means nothing moves;
//   - the program's own Healthy check, if any, passes.
func (s *Server) stuck(now int64) string {
	if !s.draining.Load() {
		s.mu.Lock()
		ls := s.listeners
		s.mu.Unlock()
		for _, l := range ls {
			if !l.alive(now, s.wd.interval) {
				return fmt.Sprintf("the accept loop on %s has not come back to Accept for %s", l.Addr(), time.Duration(now-l.left.Load()).Round(time.Millisecond))
			}
		}
	}
	if s.timeout > 0 && s.overdue.Load() > 0 {
		if idle := time.Duration(now - s.lastDone.Load()); idle >= s.timeout {
			return fmt.Sprintf("%d requests ran past their deadline and none completed for %s", s.overdue.Load(), idle.Round(time.Millisecond))
		}
	}
	if s.healthy != nil && !s.healthy() {
		return "the program's health check failed"
	}
	return ""
}

// startWatchdogTicker paces pings for listeners that cannot wake their
// accept loop with a deadline; stuck still judges those loops.
func (s *Server) startWatchdogTicker() (stop func()) {
	need := false
	for _, l := range s.listeners {
		need = need || l.dl == nil
	}
	if !s.wd.enabled() || !need {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(s.wd.interval / 4)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s.maybePing(s.now())
			}
		}
	}()
	return func() { close(done); <-exited }
}
