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

// A rollout replaces every slot's worker with one of a new generation:
// a canary first; once it is ready, the rest with at most surge new workers
// booting at once. An old worker gets SIGTERM only once its replacement is
// ready, so the ready count never drops for the rollout's sake. If any new
// worker fails to boot, the rollout stops, the new generation's workers are
// stopped, and slots already handed to it are rolled back the same way.
type rollout struct {
	gen      int
	cfg      *config.Config
	sockets  activation.Set
	from     int // the generation being replaced
	started  time.Time
	pending  []int // slot numbers still to replace, in order
	promoted int
	canary   bool // wait for the first replacement before any other
	rollback bool // this rollout restores the previous generation
	waiters  []chan error
	reason   string // why it was started, for the log
}

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
	reply   chan error
}

type scaleRequest struct {
	delta int
	reply chan error
}

// ErrNotDelivered says a reload request never reached the supervisor.
var ErrNotDelivered = errors.New("reload not started")

// ErrReloadInProgress is returned by Reload while another one runs.
var ErrReloadInProgress = errors.New("a reload is already in progress")

// Reload rolls a new generation of workers with cfg (a validated config)
// and sockets, and returns when the rollout finished: nil when the new
// generation serves, an error saying why not otherwise (the old generation
// then still serves). The supervisor takes ownership of the sockets: those
// the current set lacks are closed if the reload fails, and sockets the new
// set lacks are closed once no worker uses them. A nil set keeps the
// current sockets. If the request never reaches the supervisor (it is not
// running, or ctx ends first), the error wraps ErrNotDelivered and the
// caller keeps the sockets it opened.
func (s *Supervisor) Reload(ctx context.Context, cfg *config.Config, sockets activation.Set, reason string) error {
	req := reloadRequest{cfg: cfg, sockets: sockets, reason: reason, reply: make(chan error, 1)}
	select {
	case s.events <- req:
	case <-s.done:
		return fmt.Errorf("%w: baton is not running", ErrNotDelivered)
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotDelivered, ctx.Err())
	}
	select {
	case err := <-req.reply:
		return err
	case <-s.done:
		return errors.New("baton stopped during the reload")
	case <-ctx.Done():
		return fmt.Errorf("reload still running: %w", ctx.Err())
	}
}

// Scale adds (delta > 0) or drains (delta < 0) workers one at a time, as
// SIGTTIN and SIGTTOU do.
func (s *Supervisor) Scale(ctx context.Context, delta int) error {
	req := scaleRequest{delta: delta, reply: make(chan error, 1)}
	select {
	case s.events <- req:
	case <-s.done:
		return errors.New("baton is not running")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-s.done:
		return errors.New("baton stopped")
	}
}

func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}

func (s *Supervisor) beginReload(req reloadRequest) {
	if req.sockets == nil {
		req.sockets = s.sockets
	}
	s.hold(req.sockets)
	refuse := func(err error) {
		s.closeSockets(s.notIn(req.sockets, s.sockets))
		req.reply <- err
	}
	switch {
	case s.stopping:
		refuse(errors.New("baton is stopping"))
		return
	case s.rollout != nil && !s.rollout.rollback:
		refuse(fmt.Errorf("%w (to generation %d)", ErrReloadInProgress, s.rollout.gen))
		return
	case s.rollout != nil:
		refuse(fmt.Errorf("%w (rolling back to generation %d)", ErrReloadInProgress, s.rollout.gen))
		return
	}
	s.lastGen++
	r := &rollout{gen: s.lastGen, cfg: req.cfg, sockets: req.sockets, from: s.gen, started: s.now(), canary: true, waiters: []chan error{req.reply}, reason: req.reason}
	for i := 1; i <= req.cfg.Workers; i++ {
		r.pending = append(r.pending, i)
	}
	s.cancelRecycles()
	s.rollout = r
	// systemd 252 with ExecReload= and Type=notify-reload (253+) both
	// understand this pair; READY=1 follows when the rollout ends.
	s.sendUp(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
	s.log.WithField("generation", r.gen).Infof("reload (%s): rolling generation %d to generation %d, %d workers, surge %d", req.reason, r.from, r.gen, req.cfg.Workers, req.cfg.Surge)
}

// advance moves a rollout or recycling on after any event.
func (s *Supervisor) advance() {
	if s.stopping {
		return
	}
	r := s.rollout
	for _, sl := range s.slots {
		if sl.next == nil || sl.next.state != Ready {
			continue
		}
		if r != nil && sl.next.gen == r.gen {
			s.promote(r, sl)
		} else {
			s.promoteRecycled(sl)
		}
	}
	if r == nil {
		s.advanceRecycles()
		return
	}
	inflight := 0
	for _, sl := range s.slots {
		if sl.next != nil {
			inflight++
		}
	}
	limit := r.cfg.Surge
	if r.canary && r.promoted == 0 {
		limit = 1
	}
	for inflight < limit && len(r.pending) > 0 {
		n := r.pending[0]
		r.pending = r.pending[1:]
		if !s.spawnNext(r, n) {
			return
		}
		inflight++
	}
	if len(r.pending) > 0 || inflight > 0 {
		return
	}
	// Every slot runs the new generation; drain the slots it no longer has,
	// one at a time.
	if len(s.slots) > r.cfg.Workers {
		for _, w := range s.byPID {
			if w.retired && w.state == Stopping && w.slot > r.cfg.Workers {
				return // the previous one is still draining
			}
		}
		last := s.slots[len(s.slots)-1]
		s.slots = s.slots[:len(s.slots)-1]
		if last.w != nil {
			last.w.retired = true
			s.stopWorker(last.w, "scaled down", Graceful)
			return
		}
		s.advance()
		return
	}
	s.finishRollout(r)
}

func (s *Supervisor) slotFor(n int, r *rollout) *slot {
	for len(s.slots) < n {
		// Scaling up: the new slot starts empty and belongs to the new
		// generation from the start.
		s.slots = append(s.slots, &slot{n: len(s.slots) + 1, gen: r.gen, cfg: r.cfg, sockets: r.sockets})
	}
	return s.slots[n-1]
}

// spawnNext boots slot n's replacement. It reports false when the rollout
// failed instead.
func (s *Supervisor) spawnNext(r *rollout, n int) bool {
	sl := s.slotFor(n, r)
	w, err := s.spawn(n, r.gen, r.cfg, r.sockets)
	if err != nil {
		s.rolloutFailed(err.Error())
		return false
	}
	sl.next = w
	return true
}

// promote hands a slot to its ready replacement and drains the old worker.
func (s *Supervisor) promote(r *rollout, sl *slot) {
	old := sl.w
	sl.w, sl.next = sl.next, nil
	sl.gen, sl.cfg, sl.sockets = r.gen, r.cfg, r.sockets
	sl.recycle, sl.recycleAfter = "", time.Time{}
	sl.failures, sl.nextSpawn = 0, time.Time{}
	r.promoted++
	if old != nil {
		old.retired = true
		s.stopWorker(old, fmt.Sprintf("replaced by generation %d", r.gen), Graceful)
	}
	if r.promoted == 1 && r.canary {
		s.log.WithField("generation", r.gen).Infof("canary worker %d of generation %d is ready; rolling the rest", sl.n, r.gen)
	}
}

// rolloutFailed stops the new generation and restores the old one.
func (s *Supervisor) rolloutFailed(reason string) {
	r := s.rollout
	if r == nil {
		return
	}
	s.rollout = nil
	for _, sl := range s.slots {
		if nw := sl.next; nw != nil {
			sl.next = nil
			nw.retired = true
			s.stopWorker(nw, "rollout failed", Graceful)
		}
	}
	if r.rollback {
		s.log.Errorf("rollback to generation %d failed: %s; the slots it could not restore keep generation %d", r.gen, reason, r.from)
		return
	}
	err := fmt.Errorf("reload to generation %d failed: %s; generation %d keeps serving", r.gen, reason, r.from)
	s.log.WithField("generation", r.gen).Error(err)
	s.lastReloadErr = err.Error()
	s.record(r, err)
	// Sockets opened for the failed generation: baton's copies go now; a
	// new worker still draining keeps its own until it exits.
	s.closeSockets(s.notIn(r.sockets, s.sockets))
	for _, c := range r.waiters {
		c <- err
	}
	s.sendUp("READY=1")
	// Slots already handed to the failed generation go back to the old one.
	back := &rollout{gen: r.from, cfg: s.cfg, sockets: s.sockets, from: r.gen, started: s.now(), rollback: true, reason: "rollback"}
	for _, sl := range s.slots {
		if sl.gen == r.gen {
			back.pending = append(back.pending, sl.n)
		}
	}
	// Slots the failed rollout added (scale up) are dropped.
	for len(s.slots) > s.cfg.Workers {
		last := s.slots[len(s.slots)-1]
		s.slots = s.slots[:len(s.slots)-1]
		if last.w != nil {
			last.w.retired = true
			s.stopWorker(last.w, "rollout failed", Graceful)
		}
		back.pending = removeSlot(back.pending, last.n)
	}
	if len(back.pending) > 0 {
		s.log.Warnf("rolling %d workers back to generation %d", len(back.pending), r.from)
		s.rollout = back
	}
}

func removeSlot(list []int, n int) []int {
	out := list[:0]
	for _, v := range list {
		if v != n {
			out = append(out, v)
		}
	}
	return out
}

func (s *Supervisor) finishRollout(r *rollout) {
	s.rollout = nil
	if r.rollback {
		s.log.Infof("rolled back to generation %d", r.gen)
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
	s.log.WithField("generation", r.gen).Infof("reload done: generation %d serves (%s)", r.gen, s.now().Sub(r.started).Round(time.Millisecond))
	for _, c := range r.waiters {
		c <- nil
	}
	s.sendUp("READY=1")
}

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

func (s *Supervisor) slotOf(w *worker) *slot {
	if w.slot < 1 || w.slot > len(s.slots) {
		return nil
	}
	return s.slots[w.slot-1]
}

// scale adds or drains workers without replacing the others.
func (s *Supervisor) scale(delta int) error {
	if s.stopping {
		return errors.New("baton is stopping")
	}
	if s.rollout != nil {
		return fmt.Errorf("cannot scale: %w", ErrReloadInProgress)
	}
	n := s.cfg.Workers + delta
	if n < 1 {
		return fmt.Errorf("cannot scale below 1 worker")
	}
	cfg := *s.cfg
	all := s.cfg.MinReady == s.cfg.Workers
	cfg.Workers = n
	if all || cfg.MinReady > n {
		cfg.MinReady = n
	}
	old := s.cfg.Workers
	s.cfg = &cfg
	for _, sl := range s.slots {
		if sl.gen == s.gen {
			sl.cfg = s.cfg
		}
	}
	s.log.Infof("scaling from %d to %d workers", old, n)
	for len(s.slots) < n {
		sl := &slot{n: len(s.slots) + 1, gen: s.gen, cfg: s.cfg, sockets: s.sockets}
		s.slots = append(s.slots, sl)
		s.start(sl)
	}
	for len(s.slots) > n {
		last := s.slots[len(s.slots)-1]
		s.slots = s.slots[:len(s.slots)-1]
		if last.w != nil {
			last.w.retired = true
			s.stopWorker(last.w, "scaled down", Graceful)
		}
	}
	return nil
}
