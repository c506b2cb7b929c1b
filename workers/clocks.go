package workers

import (
	"fmt"
	"time"

	"github.com/batonhq/baton/internal/config"
	"github.com/sirupsen/logrus"
)

// The clocks, each with one meaning (DESIGN.md, "Timeouts with one meaning
// each"):
//
//	boot      spawn → READY=1           (boot-timeout, EXTEND_TIMEOUT_USEC=)
//	watchdog  last WATCHDOG=1           (watchdog-timeout, WATCHDOG_USEC=)
//	request   X_BATON_REQUEST_BEGIN=ID  (request-timeout)
//	graceful  SIGTERM → SIGKILL         (graceful-timeout)
//
// The first three escalate along one ladder: timeout-signal (SIGABRT by
// default, so the worker dumps its stacks), timeout-grace, SIGKILL; the
// worker is then replaced like a crashed one.

// stopMargin is added to the drain budget baton asks systemd for, so that
// baton's own SIGKILLs and exit fit inside systemd's stop timeout.
const stopMargin = 5 * time.Second

// addClock returns t+d, or the zero time (never) for Infinity.
func addClock(t time.Time, d time.Duration) time.Time {
	if d == config.Infinity {
		return time.Time{}
	}
	return t.Add(d)
}

// resetTimer arms the timer for the earliest deadline of any clock.
func (s *Supervisor) resetTimer(t *time.Timer) {
	next := s.nextDeadline()
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	d := time.Hour
	if !next.IsZero() {
		d = max(next.Sub(s.now()), 0)
	}
	t.Reset(d)
}

func (s *Supervisor) nextDeadline() time.Time {
	var next time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, sl := range s.slots {
		if sl.w == nil && sl.next == nil && !s.stopping {
			earlier(sl.nextSpawn)
		}
	}
	for _, w := range s.byPID {
		earlier(w.killAt)
		if w.escalated != "" {
			continue
		}
		switch w.state {
		case Starting:
			earlier(w.bootDeadline)
		case Ready:
			earlier(addClock(w.lastHeartbeat, w.watchdog))
			if _, started := w.oldestRequest(); !started.IsZero() {
				earlier(addClock(started, w.cfg.RequestTimeout))
			}
		}
	}
	if s.watchdog > 0 {
		earlier(s.nextPing)
	}
	if !s.stopping {
		earlier(s.recycleDeadline())
		for _, sl := range s.slots {
			if sl.recycle != "" && sl.next == nil {
				earlier(sl.recycleAfter)
			}
		}
	}
	if s.stopping && s.upward != nil {
		earlier(s.nextExtend)
	}
	return next
}

// tick acts on every clock that has expired.
func (s *Supervisor) tick() {
	now := s.now()
	for _, w := range s.byPID {
		if !w.killAt.IsZero() && !now.Before(w.killAt) {
			s.kill(w)
			continue
		}
		if w.escalated != "" {
			continue
		}
		switch w.state {
		case Starting:
			if !w.bootDeadline.IsZero() && !now.Before(w.bootDeadline) {
				s.escalate(w, "boot", w.cfg.BootTimeout, now.Sub(w.bootDeadline),
					fmt.Sprintf("no READY=1 %s after spawn", now.Sub(w.spawned).Round(time.Millisecond)))
			}
		case Ready:
			if due := addClock(w.lastHeartbeat, w.watchdog); !due.IsZero() && !now.Before(due) {
				s.escalate(w, "watchdog", w.watchdog, now.Sub(due),
					fmt.Sprintf("no WATCHDOG=1 for %s", now.Sub(w.lastHeartbeat).Round(time.Millisecond)))
				continue
			}
			if id, started := w.oldestRequest(); !started.IsZero() {
				if due := addClock(started, w.cfg.RequestTimeout); !due.IsZero() && !now.Before(due) {
					s.escalate(w, "request", w.cfg.RequestTimeout, now.Sub(due),
						fmt.Sprintf("request %q running for %s", id, now.Sub(started).Round(time.Millisecond)))
				}
			}
		}
	}
	if !s.stopping {
		for _, sl := range s.slots {
			if sl.w == nil && sl.next == nil && !sl.nextSpawn.IsZero() && !now.Before(sl.nextSpawn) {
				s.start(sl)
			}
		}
		s.checkRecycling(now)
	}
	if s.watchdog > 0 && !now.Before(s.nextPing) {
		s.ping(now)
	}
	if s.stopping && s.upward != nil && !s.nextExtend.IsZero() && !now.Before(s.nextExtend) {
		s.sendUp(s.extendStop())
	}
}

// escalate starts the ladder for a worker whose clock expired: one log line
// per step, naming the worker, its pid, generation, age, last STATUS=, the
// clock and by how much it was missed.
func (s *Supervisor) escalate(w *worker, clock string, limit, overdue time.Duration, detail string) {
	now := s.now()
	w.escalated = clock
	w.failed = true
	if sl := s.slotOf(w); sl != nil && sl.next == w {
		s.nextFailed(sl, w, fmt.Sprintf("worker %d of generation %d: %s-timeout expired (%s)", w.slot, w.gen, clock, detail))
	}
	w.state = Stopping
	w.stopReason = clock + "-timeout"
	w.killAt = now.Add(w.cfg.TimeoutGrace)
	sig := w.cfg.TimeoutSignal
	s.ladderLog(w, clock, limit, overdue).Warnf("worker %d %s-timeout %s expired (%s, %s over); sending %s, SIGKILL in %s",
		w.slot, clock, config.FormatDuration(limit), detail, overdue.Round(time.Millisecond), sig, w.cfg.TimeoutGrace)
	if err := w.signal(signalOf(sig), false); err != nil {
		s.log.Error(err)
	}
}

// kill is the ladder's (and a drain's) last step.
func (s *Supervisor) kill(w *worker) {
	w.killAt = time.Time{}
	var entry logrus.FieldLogger
	var after string
	if w.escalated != "" {
		entry = s.ladderLog(w, w.escalated, 0, 0)
		after = fmt.Sprintf("timeout-grace %s after %s", w.cfg.TimeoutGrace, w.cfg.TimeoutSignal)
	} else {
		entry = s.workerLog(w).WithField("clock", "graceful")
		after = fmt.Sprintf("%s after %s", s.stopBudget(w), w.stopReason)
	}
	entry.Warnf("worker %d still running %s; sending SIGKILL", w.slot, after)
	if err := w.signal(sigKILL, true); err != nil {
		s.log.Error(err)
	}
	if s.stopping && s.upward != nil {
		s.sendUp(s.extendStop())
	}
}

func (s *Supervisor) ladderLog(w *worker, clock string, limit, overdue time.Duration) logrus.FieldLogger {
	f := logrus.Fields{
		"worker": w.slot, "pid": w.pid, "generation": w.gen, "clock": clock,
		"age": s.now().Sub(w.spawned).Round(time.Millisecond).String(),
	}
	if w.status != "" {
		f["status"] = w.status
	}
	if limit > 0 {
		f["limit"] = config.FormatDuration(limit)
		f["overdue"] = overdue.Round(time.Millisecond).String()
	}
	return s.log.WithFields(f)
}

// healthy is what baton's own watchdog reports: enough workers ready, or the
// pool still booting (before its first READY=1, or while a worker boots).
func (s *Supervisor) healthy() bool {
	if s.stopping || !s.sentReady || s.rollout != nil || s.ready() >= s.cfg.MinReady {
		return true
	}
	for _, w := range s.byPID {
		if w.state == Starting {
			return true
		}
	}
	return false
}

// ping sends baton's own WATCHDOG=1, which proves the event loop runs, but
// only while the pool is healthy, so that systemd restarts a hollow baton.
func (s *Supervisor) ping(now time.Time) {
	s.nextPing = now.Add(s.watchdog / 2)
	if !s.healthy() {
		if !s.withheld {
			s.withheld = true
			s.log.Warnf("pool unhealthy (%d/%d ready, min-ready %d): withholding WATCHDOG=1 from systemd", s.ready(), s.cfg.Workers, s.cfg.MinReady)
		}
		return
	}
	if s.withheld {
		s.withheld = false
		s.log.Info("pool healthy again: resuming WATCHDOG=1")
	}
	s.sendUp("WATCHDOG=1")
}

// extendStop asks systemd for the time the drain still needs, and schedules
// the next request before that runs out.
func (s *Supervisor) extendStop() string {
	now := s.now()
	need := stopMargin
	for _, w := range s.byPID {
		if !w.killAt.IsZero() {
			need = max(need, w.killAt.Sub(now)+stopMargin)
		} else if w.state == Stopping {
			need = max(need, stopMargin)
		}
	}
	for _, w := range s.byPID {
		if w.state == Stopping && w.killAt.IsZero() && w.escalated == "" {
			need = max(need, time.Hour) // graceful-timeout infinity
		}
	}
	// Whole seconds up: the microseconds that pass while computing this
	// would otherwise shave the budget below what was promised.
	need = (need + time.Second - 1).Truncate(time.Second)
	s.nextExtend = now.Add(min(need/2, 10*time.Second))
	return fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", need.Microseconds())
}
