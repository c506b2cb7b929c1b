package workers

import (
	"fmt"
	"time"

	"github.com/batonhq/baton/internal/config"
)

// State is one step of a worker's life, as systemd's service.c has one
// state per step of a unit's start and stop. Each state allows exactly one
// clock, armed by setState and dropped when the state is left:
//
//	Starting   spawned, not yet ready        boot-timeout (EXTEND_TIMEOUT_USEC= extends)
//	Ready      READY=1 (or executed)         watchdog, request, max-lifetime (the earliest)
//	Stopping   SIGTERM sent, or STOPPING=1   graceful-timeout, then SIGKILL
//	Signalled  a clock expired: timeout-signal sent   timeout-grace, then SIGKILL
//	Killed     SIGKILL sent                  a reminder that it has not died yet
//	Exited     reaped                        none
type State int

const (
	Starting State = iota
	Ready
	Stopping
	Signalled
	Killed
	Exited
)

var stateNames = [...]string{"starting", "ready", "stopping", "signalled", "killed", "exited"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("state(%d)", int(s))
	}
	return stateNames[s]
}

// MarshalText keeps handoffs (JSON, across an upgrade in place) readable
// by names, which are stable where numbers would not be.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name; one it does not know is a stopping worker,
// the state that commits baton to the least.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = State(i)
			return nil
		}
	}
	*s = Stopping
	return nil
}

// Phase is the state as status and metrics show it: starting, ready or
// stopping (every step of the stop ladder).
func (s State) Phase() string {
	switch s {
	case Starting, Ready:
		return s.String()
	}
	return "stopping"
}

// stopping reports whether the worker is on the stop ladder (or gone).
func (s State) stopping() bool { return s >= Stopping }

// StopReason says why a worker is stopping: set once, when it leaves
// Starting or Ready.
type StopReason int

const (
	// NoStop: the worker is not stopping (or it simply exited).
	NoStop StopReason = iota
	// StopPool: baton is stopping (systemctl stop, SIGTERM).
	StopPool
	// StopPoolFast: baton is stopping fast (SIGINT, SIGQUIT, Ctrl-C).
	StopPoolFast
	// StopReplaced: a reload's new worker took its slot.
	StopReplaced
	// StopRecycled: max-lifetime, max-memory or X_BATON_RECYCLE=1.
	StopRecycled
	// StopScaledDown: its slot was removed.
	StopScaledDown
	// StopCancelled: the rollout or recycling it was started for was
	// abandoned.
	StopCancelled
	// StopSelf: the worker said STOPPING=1.
	StopSelf
	// StopBootTimeout, StopWatchdog, StopRequestTimeout: a clock expired.
	StopBootTimeout
	StopWatchdog
	StopRequestTimeout
)

var reasonNames = [...]string{"", "stopped", "stopped", "replaced", "recycle", "scaled_down", "cancelled", "self", "boot_timeout", "watchdog", "request_timeout"}

// Metric is the reason's label in baton_worker_exits_total.
func (r StopReason) Metric() string {
	if r <= NoStop || int(r) >= len(reasonNames) {
		return ""
	}
	return reasonNames[r]
}

// Clock names the clock behind a timeout reason ("boot", "watchdog",
// "request"), or "".
func (r StopReason) Clock() string {
	switch r {
	case StopBootTimeout:
		return "boot"
	case StopWatchdog:
		return "watchdog"
	case StopRequestTimeout:
		return "request"
	}
	return ""
}

// Failure reports whether the stop counts against the worker's slot.
func (r StopReason) Failure() bool { return r.Clock() != "" }

// Planned reports whether baton asked the worker to go for its own
// reasons: its slot does not want it back.
func (r StopReason) Planned() bool {
	switch r {
	case StopPool, StopPoolFast, StopReplaced, StopRecycled, StopScaledDown, StopCancelled:
		return true
	}
	return false
}

// killWait is how long a SIGKILLed worker may take to be reaped before
// baton says so (a process in uninterruptible sleep, D state); the
// reminder doubles each time, up to killWaitMax.
const (
	killWait    = 5 * time.Second
	killWaitMax = time.Minute
)

// setState moves w to st and arms the one clock st allows. It is the only
// place a worker's state changes.
func (s *Supervisor) setState(w *worker, st State) {
	now := s.now()
	s.count(w, -1)
	prev := w.state
	w.state = st
	s.count(w, +1)
	s.statusDirty = true
	switch st {
	case Starting:
		s.arm(&w.alarm, w.bootDeadline)
	case Ready:
		w.readyAt = now
		// The watchdog clock starts at readiness; the boot clock covered
		// everything before.
		w.lastHeartbeat = now
		s.arm(&w.alarm, s.readyDue(w))
	case Stopping:
		w.stoppingAt = now
		budget := w.cfg.GracefulTimeout
		if w.reason == StopPoolFast {
			budget = FastStopTimeout
		}
		w.budget = budget
		w.deadline = addClock(now, budget)
		s.arm(&w.alarm, w.deadline)
	case Signalled:
		if !prev.stopping() {
			w.stoppingAt = now
		}
		w.deadline = now.Add(w.cfg.TimeoutGrace)
		s.arm(&w.alarm, w.deadline)
	case Killed:
		w.killWait = killWait
		w.deadline = now.Add(w.killWait)
		s.arm(&w.alarm, w.deadline)
	case Exited:
		w.deadline = time.Time{}
		s.disarm(&w.alarm)
	}
}

// count keeps the per-state counters that status, health and rollouts read
// in O(1).
func (s *Supervisor) count(w *worker, d int) {
	switch w.state {
	case Starting:
		s.nStarting += d
	case Ready:
		s.nReady += d
	}
}

// addClock returns t+d, or the zero time (never) for Infinity.
func addClock(t time.Time, d time.Duration) time.Time {
	if d == config.Infinity {
		return time.Time{}
	}
	return t.Add(d)
}
