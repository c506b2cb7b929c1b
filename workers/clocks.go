package workers

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/printable"
	"github.com/batonhq/baton/internal/sdnotify"
	"github.com/sirupsen/logrus"
)

// The clocks, each with one meaning (docs/design.md, "Timeouts with one
// meaning each"):
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

// stallThreshold is how late the loop may wake before it counts as having
// been stalled (SIGSTOP, swap, a frozen VM); stallGraceMax bounds the time
// it then gives workers' clocks, so that heartbeats their senders could not
// queue while baton was not reading arrive before anyone is judged.
const (
	stallThreshold = 500 * time.Millisecond
	stallGraceMax  = 3 * time.Second
	// stallTick keeps the loop waking even with no clock due soon, so that
	// a stall shows as lateness of at most this much less than it lasted.
	stallTick = 250 * time.Millisecond
	// backlogGrace is given when a drain found the notify socket backed up:
	// workers may still be blocked in sends that did not fit.
	backlogGrace = time.Second
)

// stalled is called when the loop woke late: baton itself did not run.
func (s *Supervisor) stalled(late time.Duration, now time.Time) {
	grace := min(late, stallGraceMax)
	s.graceUntil = later(s.graceUntil, now.Add(grace))
	s.log.WithField("stall", late.Round(time.Millisecond).String()).Warnf("baton did not run for %s (stopped, or starved of CPU); reading what workers sent meanwhile and judging no boot, watchdog or request clock for %s", late.Round(time.Millisecond), grace.Round(time.Millisecond))
}

// backlogged is called when a drain found many datagrams queued: senders
// that found the queue full may still be blocked with their heartbeats.
func (s *Supervisor) backlogged(n int, now time.Time) {
	s.graceUntil = later(s.graceUntil, now.Add(backlogGrace))
	s.log.WithField("datagrams", n).Warnf("%d notifications were waiting when baton judged its clocks; judging none for %s more", n, backlogGrace)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// inGrace re-arms a worker's clock at the end of a stall's grace instead
// of judging it, and reports whether it did.
func (s *Supervisor) inGrace(w *worker, now time.Time) bool {
	if now.Before(s.graceUntil) {
		s.arm(&w.alarm, s.graceUntil)
		return true
	}
	return false
}

// readyDue is when a ready worker's alarm must next look at it: the
// earliest of its watchdog, its oldest request's deadline and its
// max-lifetime. Heartbeats and request ends only ever move these later,
// so they leave the alarm alone; it re-arms itself when it goes off early.
func (s *Supervisor) readyDue(w *worker) time.Time {
	due := addClock(w.lastHeartbeat, w.watchdog)
	if _, start := w.reqs.oldest(); !start.IsZero() {
		due = earliest(due, addClock(start, w.cfg.RequestTimeout))
	}
	return earliest(due, w.recycleAt)
}

func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// workerAlarm is a worker's alarm going off: its state's one clock.
func (s *Supervisor) workerAlarm(w *worker, now time.Time) {
	switch w.state {
	case Starting:
		if s.inGrace(w, now) {
			return
		}
		s.escalate(w, StopBootTimeout, w.cfg.BootTimeout, now.Sub(w.bootDeadline),
			fmt.Sprintf("no READY=1 %s after spawn%s", now.Sub(w.spawned).Round(time.Millisecond), s.diagnoseBoot(w)), 0)
	case Ready:
		s.readyAlarm(w, now)
	case Stopping, Signalled:
		s.kill(w)
	case Killed:
		s.workerLog(w).Errorf("worker %d (pid %d) is still not gone %s after SIGKILL (uninterruptible sleep?); its slot waits", w.slot, w.pid, now.Sub(w.deadline.Add(-w.killWait)).Round(time.Second))
		w.killWait = min(2*w.killWait, killWaitMax)
		w.deadline = now.Add(w.killWait)
		s.arm(&w.alarm, w.deadline)
	}
}

func (s *Supervisor) readyAlarm(w *worker, now time.Time) {
	if due := addClock(w.lastHeartbeat, w.watchdog); !due.IsZero() && !now.Before(due) {
		if s.inGrace(w, now) {
			return
		}
		s.escalate(w, StopWatchdog, w.watchdog, now.Sub(due),
			fmt.Sprintf("no WATCHDOG=1 for %s", now.Sub(w.lastHeartbeat).Round(time.Millisecond)), w.pinger)
		return
	}
	if id, start := w.reqs.oldest(); !start.IsZero() {
		if due := addClock(start, w.cfg.RequestTimeout); !due.IsZero() && !now.Before(due) {
			if s.inGrace(w, now) {
				return
			}
			s.escalate(w, StopRequestTimeout, w.cfg.RequestTimeout, now.Sub(due),
				fmt.Sprintf("request %q running for %s", id, now.Sub(start).Round(time.Millisecond)), w.reqs.oldestPID())
			return
		}
	}
	if !w.recycleAt.IsZero() && !now.Before(w.recycleAt) {
		w.recycleAt = time.Time{}
		s.wantRecycle(w, fmt.Sprintf("max-lifetime %s reached", config.FormatDuration(w.cfg.MaxLifetime)))
	}
	s.arm(&w.alarm, s.readyDue(w))
}

// onClocks applies a message's clock fields.
func (s *Supervisor) onClocks(w *worker, m *sdnotify.Message, sender int, now time.Time) {
	if m.Watchdog {
		w.lastHeartbeat = now
		w.pinger = sender
	}
	if m.WatchdogUSec != nil {
		// As systemd: a new interval also restarts the clock.
		w.watchdog = *m.WatchdogUSec
		w.lastHeartbeat = now
		s.workerLog(w).Infof("worker %d set its watchdog-timeout to %s", w.slot, w.watchdog)
		if w.state == Ready {
			s.arm(&w.alarm, s.readyDue(w))
		}
	}
	if m.ExtendTimeoutUSec != nil {
		until := now.Add(*m.ExtendTimeoutUSec)
		switch {
		case w.state == Starting && !w.bootDeadline.IsZero() && until.After(w.bootDeadline):
			w.bootDeadline = until
			s.arm(&w.alarm, until)
			s.workerLog(w).Debugf("worker %d extended its boot-timeout to %s from now", w.slot, *m.ExtendTimeoutUSec)
		case w.state == Stopping && !w.deadline.IsZero() && until.After(w.deadline):
			w.deadline = until
			s.arm(&w.alarm, until)
			s.workerLog(w).Debugf("worker %d extended its graceful-timeout to %s from now", w.slot, *m.ExtendTimeoutUSec)
		}
	}
	if m.WatchdogTrigger && (w.state == Starting || w.state == Ready) {
		limit := w.watchdog
		if limit == config.Infinity {
			limit = 0
		}
		s.escalate(w, StopWatchdog, limit, 0, "worker sent WATCHDOG=trigger", sender)
	}
}

// escalate starts the ladder for a worker whose clock expired: one log line
// per step, naming the worker, its pid, generation, age, last STATUS=, the
// clock and by how much it was missed. culprit, when not the worker
// itself, is the descendant the clock accuses (the process whose
// heartbeats stopped, or that began the request: a gunicorn or puma
// worker below its master); it gets the timeout signal first, so that its
// stack is the one dumped.
func (s *Supervisor) escalate(w *worker, reason StopReason, limit, overdue time.Duration, detail string, culprit int) {
	clock := reason.Clock()
	sig := w.cfg.TimeoutSignal
	s.ladderLog(w, clock, limit, overdue).Warnf("worker %d %s-timeout %s expired (%s, %s over); sending %s, SIGKILL in %s",
		w.slot, clock, config.FormatDuration(limit), detail, overdue.Round(time.Millisecond), sig, w.cfg.TimeoutGrace)
	w.reason, w.detail = reason, clock+"-timeout"
	f := w.failedWith(fmt.Sprintf("%s-timeout %s expired (%s)", clock, config.FormatDuration(limit), detail), s.now())
	if reason == StopBootTimeout {
		f.When = "" // the detail says it
	}
	s.setState(w, Signalled)
	// Only a process still in the worker's cell or tree: a pid recycled by
	// another process since it last spoke must not be signalled.
	if culprit > 0 && culprit != w.pid && s.descends(culprit, w) {
		if err := syscall.Kill(culprit, signalOf(sig)); err != nil && !errors.Is(err, syscall.ESRCH) {
			s.log.Error(fmt.Errorf("signal pid %d of worker %d with %s: %w", culprit, w.slot, sig, err))
		} else {
			s.workerLog(w).Infof("worker %d: sent %s to pid %d, whose %s-timeout expired", w.slot, sig, culprit, clock)
		}
	}
	if err := w.proc.Signal(signalOf(sig)); err != nil {
		s.log.Error(fmt.Errorf("signal worker %d (pid %d) with %s: %w", w.slot, w.pid, sig, err))
	}
	s.workerFailed(w, f)
}

// kill is the ladder's (and a drain's) last step: SIGKILL to everything
// the worker forked.
func (s *Supervisor) kill(w *worker) {
	var entry logrus.FieldLogger
	var after string
	if w.state == Signalled {
		entry = s.ladderLog(w, w.reason.Clock(), 0, 0)
		after = fmt.Sprintf("timeout-grace %s after %s", w.cfg.TimeoutGrace, w.cfg.TimeoutSignal)
	} else {
		entry = s.workerLog(w).WithField("clock", "graceful")
		after = fmt.Sprintf("%s after %s", config.FormatDuration(w.budget), w.detail)
	}
	entry.Warnf("worker %d still running %s; sending SIGKILL", w.slot, after)
	s.setState(w, Killed)
	if err := w.proc.KillAll(); err != nil {
		s.log.Error(fmt.Errorf("kill worker %d (pid %d): %w", w.slot, w.pid, err))
	}
	if s.phase == phaseStopping {
		s.extendStop("")
	}
}

func (s *Supervisor) ladderLog(w *worker, clock string, limit, overdue time.Duration) logrus.FieldLogger {
	f := logrus.Fields{
		"worker": w.slot, "pid": w.pid, "generation": w.gen, "clock": clock,
		"age": s.now().Sub(w.spawned).Round(time.Millisecond).String(),
	}
	if w.status != "" {
		f["status"] = printable.Escape(w.status)
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
	return s.phase != phaseRunning || !s.sentReady || s.rollout != nil || s.nReady >= s.cfg.MinReady || s.nStarting > 0
}

// ping sends baton's own WATCHDOG=1, which proves the event loop runs, but
// only while the pool is healthy, so that systemd restarts a hollow baton.
func (s *Supervisor) ping(now time.Time) {
	s.arm(&s.pingAlarm, now.Add(s.watchdog/2))
	if !s.healthy() {
		if !s.withheld {
			s.withheld = true
			s.log.Warnf("pool unhealthy (%d/%d ready, min-ready %d): withholding WATCHDOG=1 from systemd", s.nReady, s.cfg.Workers, s.cfg.MinReady)
		}
		return
	}
	if s.withheld {
		s.withheld = false
		s.log.Info("pool healthy again: resuming WATCHDOG=1")
	}
	s.sendUp("WATCHDOG=1")
}

// extendStop asks systemd for the time the drain still needs (after
// prefix, other fields of the same message), and schedules the next
// request before that runs out.
func (s *Supervisor) extendStop(prefix string) {
	if s.upward == nil {
		return
	}
	now := s.now()
	need := stopMargin
	for _, w := range s.byPID {
		switch {
		case w.state == Stopping && w.deadline.IsZero():
			need = max(need, time.Hour) // graceful-timeout infinity
		case w.state >= Stopping && !w.deadline.IsZero():
			need = max(need, w.deadline.Sub(now)+stopMargin)
		}
	}
	// Whole seconds up: the microseconds that pass while computing this
	// would otherwise shave the budget below what was promised.
	need = (need + time.Second - 1).Truncate(time.Second)
	s.arm(&s.extendAlarm, now.Add(min(need/2, 10*time.Second)))
	s.sendUp(fmt.Sprintf("%sEXTEND_TIMEOUT_USEC=%d", prefix, need.Microseconds()))
}

func signalOf(s config.Signal) syscall.Signal { return syscall.Signal(s) }
