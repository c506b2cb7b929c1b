package workers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/config"
	"golang.org/x/sys/unix"
)

// A rollout replaces every slot's worker with one of a new generation.
//
//	canary    one new worker boots beside the old one in slot 1; once
//	          ready it must stay up for settle-time before the old worker
//	          is told to drain (gunicorn, for one, says READY=1 before it
//	          imports the application, so readiness alone proves little)
//	rolling   the other slots, at most surge new workers booting at once;
//	          an old worker drains only once its replacement is ready, so
//	          the ready count never drops for the rollout's sake
//	settling  every slot runs the new generation; settle-time more before
//	          the reload is reported done
//
// A new worker that fails to boot, or exits (or misses a clock) at any
// point of the rollout, fails it: the new generation's workers are
// stopped, slots already handed over are rolled back, and the reload
// reports the failure with the worker's exit and last output line. A
// reload asked for during another is queued (one, the latest config).
type rollout struct {
	gen      int
	cfg      *config.Config
	sockets  activation.Set
	from     int // the generation being replaced
	started  time.Time
	pending  []int // slot numbers still to replace, in order
	phase    rolloutPhase
	canary   *slot // the canary's slot while it settles
	promoted int
	rollback bool // this rollout restores the previous generation
	waiters  []chan error
	reason   string // why it was started, for the log
	alarm    alarm
	// announced: RELOADING=1 went to systemd, READY=1 must follow.
	announced bool
	// failure, in a rollback, is the failed reload it undoes: its waiters
	// hear of it once the old generation is back in every slot.
	failure error
}

type rolloutPhase int

const (
	phaseCanary rolloutPhase = iota
	phaseRolling
	phaseSettling
)

// ReloadResult records one finished reload.
type ReloadResult struct {
	Generation int
	Started    time.Time
	Duration   time.Duration
	Err        string // empty on success
}

type reloadRequest struct {
	cfg     *config.Config
	sockets activation.Set
	reason  string
	waiters []chan error
}

type scaleRequest struct {
	delta int
	reply chan error
}

// Reload rolls a new generation of workers with cfg (a validated config)
// and sockets, and returns when the rollout finished: nil when the new
// generation serves, an error that Is ErrReloadFailed saying why not
// otherwise (the old generation then still serves). A reload asked for
// while another runs is queued behind it; queued reloads coalesce, the
// latest config winning. The supervisor takes ownership of the sockets:
// those the current set lacks are closed if the reload fails, and sockets
// the new set lacks are closed once no worker uses them. A nil set keeps
// the current sockets. reason names what asked (SIGHUP, control) for the
// log. If the request never reaches the supervisor (it is not running, or
// ctx ends first), the error wraps ErrNotDelivered and the caller keeps
// the sockets it opened.
func (s *Supervisor) Reload(ctx context.Context, cfg *config.Config, sockets activation.Set, reason string) error {
	reply := make(chan error, 1)
	req := &reloadRequest{cfg: cfg, sockets: sockets, reason: reason, waiters: []chan error{reply}}
	select {
	case s.events <- req:
	case <-s.done:
		return fmt.Errorf("%w: baton is not running", ErrNotDelivered)
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotDelivered, ctx.Err())
	}
	select {
	case err := <-reply:
		return err
	case <-s.done:
		return errors.New("baton stopped during the reload")
	case <-ctx.Done():
		return fmt.Errorf("reload still running: %w", ctx.Err())
	}
}

func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}

func (s *Supervisor) beginReload(req *reloadRequest) {
	if req.sockets == nil {
		req.sockets = s.sockets
	}
	s.hold(req.sockets)
	if s.phase != phaseRunning {
		s.log.Warnf("reload (%s) refused: baton is stopping", req.reason)
		s.closeUnusedSockets()
		for _, c := range req.waiters {
			c <- ErrStopping
		}
		return
	}
	if r := s.rollout; r != nil {
		s.queue(req, r)
		return
	}
	s.startRollout(req)
}

// queue keeps one reload to run after the current rollout: a later
// request replaces the config of an earlier queued one, and everyone
// waiting gets the outcome of the one that runs.
func (s *Supervisor) queue(req *reloadRequest, r *rollout) {
	what := fmt.Sprintf("the reload to generation %d", r.gen)
	if r.rollback {
		what = fmt.Sprintf("the rollback to generation %d", r.gen)
	}
	if q := s.queued; q != nil {
		q.cfg, q.sockets = req.cfg, req.sockets
		q.reason += ", " + req.reason
		q.waiters = append(q.waiters, req.waiters...)
		s.closeUnusedSockets()
		s.log.Infof("reload (%s) queued behind %s, replacing the config of the reload queued before", req.reason, what)
		return
	}
	s.queued = req
	s.log.Infof("reload (%s) queued: it runs after %s", req.reason, what)
}

// startQueued runs the queued reload, if any, once nothing else rolls.
func (s *Supervisor) startQueued() {
	if q := s.queued; q != nil && s.rollout == nil && s.phase == phaseRunning {
		s.queued = nil
		s.startRollout(q)
	}
}

func (s *Supervisor) startRollout(req *reloadRequest) {
	s.lastGen++
	r := &rollout{gen: s.lastGen, cfg: req.cfg, sockets: req.sockets, from: s.gen, started: s.now(), phase: phaseCanary, waiters: req.waiters, reason: req.reason}
	r.alarm = newAlarm(func(now time.Time) { s.rolloutAlarm(r, now) })
	for i := 1; i <= req.cfg.Workers; i++ {
		r.pending = append(r.pending, i)
	}
	s.cancelRecycles()
	s.rollout = r
	s.statusDirty = true
	// systemd 252 with ExecReload= and Type=notify-reload (253+) both
	// understand this pair; READY=1 follows when the rollout ends. Not
	// before the service has started: its READY=1 would count as the
	// start. While it runs, the reload's timeout (TimeoutStartSec=) is
	// extended, as a stop's is: a rollout of many workers takes its time.
	if s.sentReady {
		r.announced = true
		s.sendUp(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
		s.arm(&s.reloadExtendAlarm, s.now())
	}
	s.log.WithField("generation", r.gen).Infof("reload (%s): rolling generation %d to generation %d, %d workers, surge %d, settle-time %s", req.reason, r.from, r.gen, req.cfg.Workers, req.cfg.Surge, req.cfg.SettleTime)
	s.rolloutStep()
}

// rolloutStep boots replacements up to the surge limit, and moves to
// settling once every slot was handed over.
func (s *Supervisor) rolloutStep() {
	r := s.rollout
	if r == nil || s.phase != phaseRunning {
		return
	}
	limit := r.cfg.Surge
	if r.phase == phaseCanary {
		limit = 1
	}
	for s.nNext < limit && len(r.pending) > 0 {
		if r.phase == phaseCanary && r.canary != nil {
			return
		}
		n := r.pending[0]
		r.pending = r.pending[1:]
		if !s.spawnNext(r, n) {
			return
		}
	}
	if r.phase != phaseRolling || len(r.pending) > 0 || s.nNext > 0 {
		return
	}
	// Every slot runs the new generation; the slots it no longer has go.
	for len(s.slots) > r.cfg.Workers {
		s.dropLastSlot(StopScaledDown, "scaled down")
	}
	if r.rollback || r.cfg.SettleTime == 0 {
		s.finishRollout(r)
		return
	}
	r.phase = phaseSettling
	s.statusDirty = true
	s.arm(&r.alarm, s.now().Add(r.cfg.SettleTime))
	s.log.WithField("generation", r.gen).Infof("generation %d took every slot; settling for %s", r.gen, r.cfg.SettleTime)
}

// dropLastSlot removes the pool's last slot and retires its workers.
func (s *Supervisor) dropLastSlot(reason StopReason, detail string) {
	last := s.slots[len(s.slots)-1]
	s.slots = s.slots[:len(s.slots)-1]
	s.disarm(&last.alarm)
	if last.next != nil {
		s.nNext--
		s.retire(last.next, reason, detail)
		last.next = nil
	}
	if last.w != nil {
		s.retire(last.w, reason, detail)
		last.w = nil
	}
	s.statusDirty = true
}

func (s *Supervisor) slotFor(n int, r *rollout) *slot {
	for len(s.slots) < n {
		// Scaling up: the new slot starts empty and belongs to the new
		// generation from the start.
		s.slots = append(s.slots, s.newSlot(len(s.slots)+1, r.gen, r.cfg, r.sockets))
	}
	return s.slots[n-1]
}

// spawnNext boots slot n's replacement. It reports false when the rollout
// failed instead.
func (s *Supervisor) spawnNext(r *rollout, n int) bool {
	sl := s.slotFor(n, r)
	w, err := s.spawn(n, r.gen, r.cfg, r.sockets)
	if err != nil {
		s.rolloutFailed(&WorkerFailure{Slot: n, Generation: r.gen, How: "could not be spawned: " + err.Error()})
		return false
	}
	sl.next = w
	s.nNext++
	return true
}

// nextReady is a rollout's new worker becoming ready.
func (s *Supervisor) nextReady(r *rollout, sl *slot) {
	if r.phase == phaseCanary && !r.rollback && r.cfg.SettleTime > 0 {
		r.canary = sl
		s.arm(&r.alarm, s.now().Add(r.cfg.SettleTime))
		s.log.WithField("generation", r.gen).Infof("canary worker %d of generation %d is ready; it must stay up for %s (settle-time) before the rest roll", sl.n, r.gen, r.cfg.SettleTime)
		return
	}
	s.promote(r, sl)
	if r.phase == phaseCanary {
		r.phase = phaseRolling
		s.log.WithField("generation", r.gen).Infof("canary worker %d of generation %d is ready; rolling the rest", sl.n, r.gen)
	}
	s.rolloutStep()
}

func (s *Supervisor) rolloutAlarm(r *rollout, now time.Time) {
	if s.rollout != r {
		return
	}
	switch r.phase {
	case phaseCanary:
		sl := r.canary
		if sl == nil || sl.next == nil || sl.next.state != Ready {
			return // its failure already failed the rollout
		}
		r.canary = nil
		s.promote(r, sl)
		r.phase = phaseRolling
		s.log.WithField("generation", r.gen).Infof("canary worker %d of generation %d stayed up for %s; rolling the rest", sl.n, r.gen, r.cfg.SettleTime)
		s.rolloutStep()
	case phaseSettling:
		ready := 0
		for _, sl := range s.slots {
			if sl.w != nil && sl.w.gen == r.gen && sl.w.state == Ready {
				ready++
			}
		}
		if ready < r.cfg.Workers {
			s.rolloutFailed(fmt.Errorf("only %d of %d workers of generation %d ready at the end of settle-time", ready, r.cfg.Workers, r.gen))
			return
		}
		s.finishRollout(r)
	}
}

// promote hands a slot to its ready replacement and drains the old worker.
func (s *Supervisor) promote(r *rollout, sl *slot) {
	old := sl.w
	sl.w, sl.next = sl.next, nil
	s.nNext--
	sl.gen, sl.cfg, sl.sockets = r.gen, r.cfg, r.sockets
	sl.recycle, sl.recycleAfter = "", time.Time{}
	sl.failures = 0
	s.disarm(&sl.alarm)
	r.promoted++
	s.statusDirty = true
	if old != nil {
		s.retire(old, StopReplaced, fmt.Sprintf("replaced by generation %d", r.gen))
	}
}

// rolloutFailed stops the new generation and restores the old one.
func (s *Supervisor) rolloutFailed(cause error) {
	r := s.rollout
	if r == nil {
		return
	}
	s.rollout = nil
	s.disarm(&r.alarm)
	s.statusDirty = true
	for _, sl := range s.slots {
		if nw := sl.next; nw != nil {
			sl.next = nil
			s.nNext--
			s.retire(nw, StopCancelled, "its rollout failed")
		}
	}
	if r.rollback {
		s.log.Errorf("rollback to generation %d failed: %v; the slots it could not restore keep generation %d", r.gen, cause, r.from)
		s.answerReload(r, fmt.Errorf("%w; the rollback failed too: %v", r.failure, cause))
		s.startQueued()
		return
	}
	err := &ReloadError{Generation: r.gen, From: r.from, Cause: cause}
	s.log.WithField("generation", r.gen).Error(err)
	s.lastReloadErr = err.Error()
	s.record(r, err)
	// Slots already handed to the failed generation go back to the old
	// one: empty ones respawn it at once, live ones are replaced like in
	// any rollout. Slots the failed rollout added (scale up) go.
	for len(s.slots) > s.cfg.Workers {
		s.dropLastSlot(StopCancelled, "its rollout failed")
	}
	back := &rollout{gen: r.from, cfg: s.cfg, sockets: s.sockets, from: r.gen, started: s.now(), phase: phaseRolling, rollback: true, reason: "rollback",
		waiters: r.waiters, announced: r.announced, failure: err}
	back.alarm = newAlarm(func(now time.Time) { s.rolloutAlarm(back, now) })
	for _, sl := range s.slots {
		if sl.gen != r.gen {
			continue
		}
		if sl.w == nil {
			sl.gen, sl.cfg, sl.sockets = s.gen, s.cfg, s.sockets
			s.arm(&sl.alarm, s.now())
			continue
		}
		back.pending = append(back.pending, sl.n)
	}
	// Sockets opened for the failed generation: baton's copies go now; a
	// new worker still draining keeps its own until it exits.
	s.closeUnusedSockets()
	if len(back.pending) > 0 {
		// Whoever waits hears of the failure once every slot is back on
		// the old generation: systemctl reload returns with the pool whole.
		s.log.Warnf("rolling %d workers back to generation %d", len(back.pending), r.from)
		s.rollout = back
		s.rolloutStep()
		return
	}
	s.answerReload(r, err)
	s.startQueued()
}

// answerReload tells systemd that the reload is over and how the pool
// stands, then the rollout's waiters how it went, in that order: a
// `systemctl reload` (or `baton reload --wait`) that returned is followed
// by a `systemctl status` that shows the outcome, not the reload in
// progress.
func (s *Supervisor) answerReload(r *rollout, err error) {
	s.publishNow()
	s.endReload(r)
	waiters := r.waiters
	s.afterUpward(func() {
		for _, c := range waiters {
			c <- err
		}
	})
}

func (s *Supervisor) finishRollout(r *rollout) {
	s.rollout = nil
	s.disarm(&r.alarm)
	s.statusDirty = true
	if r.rollback {
		s.log.Infof("rolled back to generation %d", r.gen)
		s.answerReload(r, r.failure)
		s.startQueued()
		return
	}
	s.cfg, s.gen = r.cfg, r.gen
	if r.sockets.Names() != s.sockets.Names() || len(s.notIn(s.sockets, r.sockets)) > 0 {
		s.log.Infof("sockets now %s (were %s)", r.sockets.Names(), s.sockets.Names())
	}
	s.storeNew(s.sockets, r.sockets)
	s.sockets = r.sockets
	s.closeUnusedSockets()
	s.lastReloadErr = ""
	s.record(r, nil)
	s.log.WithField("generation", r.gen).Infof("reload done: generation %d serves, %d/%d workers ready (%s)", r.gen, s.nReady, s.cfg.Workers, s.now().Sub(r.started).Round(time.Millisecond))
	s.answerReload(r, nil)
	s.recycleStep()
	s.startQueued()
}

// reloadExtend is how much more time each EXTEND_TIMEOUT_USEC= asks for
// while a rollout runs; it is sent every third of that.
const reloadExtend = 30 * time.Second

// extendReload keeps systemd from timing out a reload that progresses.
func (s *Supervisor) extendReload(now time.Time) {
	if r := s.rollout; r == nil || r.rollback || !r.announced {
		return
	}
	s.sendUp(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", reloadExtend.Microseconds()))
	s.arm(&s.reloadExtendAlarm, now.Add(reloadExtend/3))
}

// endReload tells systemd a reload it was told of is over.
func (s *Supervisor) endReload(r *rollout) {
	s.disarm(&s.reloadExtendAlarm)
	if r.announced {
		s.sendUp("READY=1")
	}
}

// ReloadRefused records a reload refused before it reached the pool (an
// invalid config, a command that cannot be executed), so that STATUS= and
// baton status say so, as they do for a rollout that failed.
func (s *Supervisor) ReloadRefused(err error) { s.send(refusedEvent{err}) }

type refusedEvent struct{ err error }

func (s *Supervisor) refused(err error) {
	// The generation it would have been: no worker of it ever ran, so the
	// next reload takes the number.
	res := ReloadResult{Generation: s.lastGen + 1, Started: s.now(), Err: "refused: " + err.Error()}
	s.lastReloadErr = res.Err
	s.reloads = append(s.reloads, res)
	if len(s.reloads) > 10 {
		s.reloads = s.reloads[1:]
	}
	s.reloadsFailed++
	s.statusDirty = true
}

// NotifyUp sends state to systemd behind what the supervisor queued
// already, so that cmd/baton's own messages keep their order with the
// supervisor's.
func (s *Supervisor) NotifyUp(state string) { s.send(upEvent(state)) }

type upEvent string

func (s *Supervisor) record(r *rollout, err error) {
	res := ReloadResult{Generation: r.gen, Started: r.started, Duration: s.now().Sub(r.started)}
	if err != nil {
		res.Err = err.Error()
	}
	s.reloads = append(s.reloads, res)
	s.reloadSeconds += res.Duration.Seconds()
	if err != nil {
		s.reloadsFailed++
	} else {
		s.reloadsOK++
	}
	if len(s.reloads) > 10 {
		s.reloads = s.reloads[1:]
	}
}
