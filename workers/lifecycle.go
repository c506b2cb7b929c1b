package workers

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/batonhq/baton/activation"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/config"
	"github.com/sirupsen/logrus"
)

const (
	sigKILL = syscall.SIGKILL
	sigTERM = syscall.SIGTERM
	sigINT  = syscall.SIGINT
)

// Respawn backoff: the first failure waits backoffBase, each further
// consecutive failure doubles it up to backoffMax. A worker that stayed
// ready for stableAfter resets its slot's count, so a long-lived worker that
// dies once is replaced almost at once.
const (
	backoffBase = 100 * time.Millisecond
	backoffMax  = 30 * time.Second
	stableAfter = 10 * time.Second
	// degradedAfter consecutive failures mark a slot as crash-looping.
	degradedAfter = 3
)

// slot is one position in the pool; its worker comes and goes. During a
// rollout, next is the new generation's worker booting beside w; it takes
// w's place once ready.
type slot struct {
	n            int
	gen          int            // the generation w belongs to (and respawns as)
	cfg          *config.Config // that generation's config
	sockets      activation.Set // that generation's sockets
	w            *worker
	next         *worker
	recycle      string    // why it is to be recycled; "" when not
	recycleAfter time.Time // earliest next recycling try, after a failure
	failures     int       // consecutive failures
	nextSpawn    time.Time // when to respawn; zero while a worker runs
	lastExit     string    // how the last worker ended, for STATUS=
}

func backoff(failures int) time.Duration {
	if failures <= 0 {
		return 0
	}
	d := backoffBase
	for i := 1; i < failures && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

func (s *Supervisor) start(sl *slot) {
	sl.nextSpawn = time.Time{}
	w, err := s.spawn(sl.n, sl.gen, sl.cfg, sl.sockets)
	if err != nil {
		// Fork itself failed (out of pids or memory): retry like a crash.
		s.log.WithField("worker", sl.n).Error(err)
		s.failed(sl, err.Error())
		return
	}
	sl.w = w
}

func (s *Supervisor) onExec(ev execEvent) {
	w := ev.w
	if ev.errMsg != "" {
		// The shim exits 127 right after; the exit event records the
		// failure, this records why.
		w.status = ev.errMsg
		s.workerLog(w).Errorf("spawn worker %d: %s", w.slot, ev.errMsg)
		return
	}
	if w.cfg.Readiness == config.ReadinessExec && w.state == Starting {
		s.markReady(w)
	}
}

func (s *Supervisor) markReady(w *worker) {
	w.state = Ready
	w.readyAt = s.now()
	// The watchdog clock starts at readiness; the boot clock covered
	// everything before.
	w.lastHeartbeat = w.readyAt
	s.workerLog(w).Infof("worker %d ready after %s", w.slot, w.readyAt.Sub(w.spawned).Round(time.Millisecond))
}

func (s *Supervisor) onExit(ev exitEvent) {
	w := ev.w
	delete(s.byPID, w.pid)
	s.rememberExit(w.pid)
	// Whatever the worker forked dies with it, as under KillMode=mixed.
	if err := w.signal(sigKILL, true); err != nil {
		s.log.Error(err)
	}
	how, clean := describeExit(ev.state, ev.err)
	s.exits[s.exitReason(w, clean)]++
	age := s.now().Sub(w.spawned).Round(time.Millisecond)
	fields := logrus.Fields{"worker": w.slot, "pid": w.pid, "generation": w.gen, "age": age.String()}
	if s.stopping || w.retired {
		if w.stopReason != "" {
			how += " (" + w.stopReason + ")"
		}
		s.log.WithFields(fields).Infof("worker %d of generation %d %s", w.slot, w.gen, how)
		s.closeUnusedSockets()
		return
	}
	sl := s.slotOf(w)
	if sl == nil {
		return
	}
	if sl.next == w {
		// A new generation's worker died before it took over: the rollout
		// fails (the old worker in this slot still serves).
		sl.next = nil
		s.log.WithFields(fields).Errorf("worker %d of generation %d %s after %s, before it was ready", w.slot, w.gen, how, age)
		why := how + " before ready"
		if w.status != "" {
			why += " (" + w.status + ")"
		}
		s.nextFailed(sl, w, fmt.Sprintf("worker %d of generation %d %s", w.slot, w.gen, why))
		return
	}
	if sl.w == w {
		sl.w = nil
	}
	if w.status != "" {
		fields["status"] = w.status
	}
	switch {
	case w.failed:
		s.log.WithFields(fields).Warnf("worker %d %s after %s (%s)", w.slot, how, age, w.stopReason)
		s.failed(sl, w.stopReason)
	case w.state == Starting:
		s.log.WithFields(fields).Errorf("worker %d %s after %s, before it was ready", w.slot, how, age)
		s.failed(sl, how+" before ready")
	case w.state == Ready && !clean:
		s.log.WithFields(fields).Errorf("worker %d %s after %s", w.slot, how, age)
		if s.now().Sub(w.readyAt) >= stableAfter {
			sl.failures = 0
		}
		s.failed(sl, how)
	default:
		// A clean exit, or one the worker announced with STOPPING=1: replace
		// it without counting a failure.
		s.log.WithFields(fields).Infof("worker %d %s after %s; replacing it", w.slot, how, age)
		sl.failures = 0
		sl.lastExit = how
		sl.nextSpawn = s.now()
	}
}

// failed schedules a slot's respawn after a failure, with backoff.
func (s *Supervisor) failed(sl *slot, why string) {
	sl.failures++
	sl.lastExit = why
	d := backoff(sl.failures)
	sl.nextSpawn = s.now().Add(d)
	entry := s.log.WithFields(logrus.Fields{"worker": sl.n, "failures": sl.failures, "delay": d.String()})
	if sl.failures >= degradedAfter {
		entry.Warnf("respawning worker %d in %s: crash-looping, %d failures in a row (last: %s)", sl.n, d, sl.failures, why)
	} else {
		entry.Infof("respawning worker %d in %s", sl.n, d)
	}
}

// stopWorker starts one worker's stop: SIGTERM (or SIGINT for a fast stop)
// now, SIGKILL to its process group when the budget runs out.
func (s *Supervisor) stopWorker(w *worker, reason string, mode StopMode) {
	if w.state == Stopping && !w.killAt.IsZero() && mode == Graceful {
		return
	}
	if w.escalated != "" {
		return // already on the ladder, with its own SIGKILL deadline
	}
	sig, budget := sigTERM, w.cfg.GracefulTimeout
	if mode == Fast {
		sig, budget = sigINT, FastStopTimeout
	}
	w.state = Stopping
	w.stopReason = reason
	w.killAt = addClock(s.now(), budget)
	if err := w.signal(sig, false); err != nil {
		s.log.Error(err)
	}
}

func (s *Supervisor) stopBudget(w *worker) string {
	if s.stopping && s.stopMode == Fast {
		return FastStopTimeout.String()
	}
	return config.FormatDuration(w.cfg.GracefulTimeout)
}

// beginStop stops the whole pool. A fast stop may follow a graceful one
// (a second Ctrl-C) and shortens it.
func (s *Supervisor) beginStop(mode StopMode) {
	if s.stopping && (mode == Graceful || s.stopMode == Fast) {
		return
	}
	s.stopping, s.stopMode = true, mode
	if r := s.rollout; r != nil {
		s.rollout = nil
		for _, c := range r.waiters {
			c <- fmt.Errorf("reload to generation %d abandoned: baton is stopping", r.gen)
		}
	}
	kind := "graceful"
	if mode == Fast {
		kind = "fast"
	}
	s.log.WithField("workers", len(s.byPID)).Infof("%s stop: stopping %d workers", kind, len(s.byPID))
	for _, sl := range s.slots {
		sl.nextSpawn = time.Time{}
	}
	for _, w := range s.byPID {
		s.stopWorker(w, kind+" stop", mode)
	}
	// After the workers' kill deadlines are set: they size the budget.
	s.sendUp("STOPPING=1\n" + s.extendStop())
}

// degraded describes crash-looping slots for STATUS=, or "".
func (s *Supervisor) degraded() string {
	var looping []string
	last := ""
	for _, sl := range s.slots {
		if sl.failures >= degradedAfter && (sl.w == nil || sl.w.state != Ready) && sl.next == nil {
			looping = append(looping, strconv.Itoa(sl.n))
			last = sl.lastExit
		}
	}
	if len(looping) == 0 {
		return ""
	}
	return "degraded: worker " + strings.Join(looping, ",") + " crash-looping (" + last + ")"
}

// exitReason classifies an exit for the metrics.
func (s *Supervisor) exitReason(w *worker, clean bool) string {
	switch {
	case w.escalated == "boot":
		return "boot_timeout"
	case w.escalated == "watchdog":
		return "watchdog"
	case w.escalated == "request":
		return "request_timeout"
	case s.stopping:
		return "stopped"
	case w.retired && strings.HasPrefix(w.stopReason, "replaced by"):
		return "replaced"
	case w.retired && strings.HasPrefix(w.stopReason, "recycled"):
		return "recycle"
	case w.retired && w.stopReason == "scaled down":
		return "scaled_down"
	case w.retired:
		return "cancelled"
	case clean:
		return "exit"
	}
	return "crash"
}
