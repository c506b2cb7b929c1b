package workers

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/contain"
	"github.com/batonhq/baton/internal/printable"
	"github.com/batonhq/baton/scoreboard"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
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
	// StartAttempts is how many times in a row one slot may fail before
	// the pool ever had a ready worker: then baton gives up, so that
	// systemd's Restart= and StartLimit*= take over, as gunicorn's arbiter
	// halts when its workers cannot boot.
	StartAttempts = 5
	// startStable is how long a worker must stay ready to count as having
	// been ready, for StartAttempts: /bin/false with exec readiness is
	// "ready" for a moment, and a pool of it must not spin for ever.
	startStable = time.Second
)

// slot is one position in the pool; its worker comes and goes. During a
// rollout or a recycling, next is the replacement booting beside w; it takes
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
	lastExit     string    // how the last worker ended, for STATUS=
	lastFailure  *WorkerFailure
	// alarm respawns the slot (after a backoff) or retries its recycling.
	alarm alarm
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

func (s *Supervisor) newSlot(n, gen int, cfg *config.Config, sockets activation.Set) *slot {
	sl := &slot{n: n, gen: gen, cfg: cfg, sockets: sockets}
	sl.alarm = newAlarm(func(time.Time) { s.slotAlarm(sl) })
	return sl
}

// slotAlarm respawns an empty slot, or retries a recycling.
func (s *Supervisor) slotAlarm(sl *slot) {
	if s.phase != phaseRunning || !s.hasSlot(sl) {
		return
	}
	switch {
	case sl.w == nil && sl.next == nil:
		s.start(sl)
	case sl.recycle != "":
		s.recycleStep()
	}
}

func (s *Supervisor) hasSlot(sl *slot) bool { return sl.n <= len(s.slots) && s.slots[sl.n-1] == sl }

// start spawns a slot's worker of its own generation.
func (s *Supervisor) start(sl *slot) {
	s.disarm(&sl.alarm)
	w, err := s.spawn(sl.n, sl.gen, sl.cfg, sl.sockets)
	if err != nil {
		// Fork itself failed (out of pids, memory or fds): retry like a
		// crash.
		s.log.WithField("worker", sl.n).Error(err)
		s.slotFailed(sl, &WorkerFailure{Slot: sl.n, Generation: sl.gen, How: "could not be spawned: " + err.Error()})
		return
	}
	sl.w = w
}

// spawn starts one worker through the shim. The returned worker is
// Starting; the spawner reports its exec and its exit as events.
func (s *Supervisor) spawn(n, gen int, cfg *config.Config, sockets activation.Set) (*worker, error) {
	s.seq++
	w := &worker{id: fmt.Sprintf("w%d-g%d-%d", n, gen, s.seq), slot: n, gen: gen, cfg: cfg, sockets: sockets, state: Starting}
	w.alarm = newAlarm(func(now time.Time) { s.workerAlarm(w, now) })
	files := sockets.Files()
	// With a request clock, a scoreboard right after the sockets (outside
	// LISTEN_FDS), where the worker marks its requests without a system
	// call each (scoreboard/, docs/protocol.md).
	boardFD := 0
	if cfg.RequestTimeout != config.Infinity {
		b, err := scoreboard.Create(scoreboard.DefaultSlots)
		if err != nil {
			return nil, fmt.Errorf("spawn worker %d: %w", n, err)
		}
		w.board = b
		boardFD = 3 + len(files)
		files = append(files, b.File())
	}
	spec := &spawnSpec{
		id:   w.id,
		path: s.shim,
		argv: append([]string{cfg.Command[0], ShimArg, "--"}, cfg.Command...),
		// The shim's report pipe comes right after the sockets (and the
		// scoreboard).
		env:    workerEnv(s.env, s.notifyFor(cfg), len(sockets), sockets.Names(), n, gen, 3+len(files), boardFD, cfg),
		files:  files,
		stdout: s.stdout, stderr: s.stderr,
		limits: contain.Limits{MemoryMax: cfg.MemoryMax, CPUWeight: cfg.CPUWeight},
		onExec: func(msg string) { s.send(execEvent{w: w, errMsg: msg}) },
	}
	var rOut, wOut, rErr, wErr *os.File
	var err error
	pumped := make(chan struct{})
	if s.onOutput != nil {
		if rOut, wOut, rErr, wErr, err = outputPipes(); err != nil {
			return nil, fmt.Errorf("spawn worker %d: output pipes: %w", n, errors.Join(err, w.closeBoard()))
		}
		spec.stdout, spec.stderr = wOut, wErr
		spec.onExit = func(ws unix.WaitStatus) { go s.afterOutput(w, ws, pumped) }
	} else {
		close(pumped)
		spec.onExit = func(ws unix.WaitStatus) { s.send(exitEvent{w: w, status: ws}) }
	}
	p, err := s.spawner.Spawn(spec)
	// Our copies of the write ends must go, whatever happened, or EOF never
	// comes.
	var cerr error
	if wOut != nil {
		cerr = errors.Join(wOut.Close(), wErr.Close())
	}
	if err != nil {
		if rOut != nil {
			err = errors.Join(err, rOut.Close(), rErr.Close())
		}
		return nil, fmt.Errorf("spawn worker %d: %w", n, errors.Join(err, w.closeBoard()))
	}
	if cerr != nil {
		s.log.WithError(cerr).Warn("close the worker's ends of its output pipes")
	}
	w.proc, w.pid = p, p.PID()
	w.spawned = s.now()
	w.bootDeadline = addClock(w.spawned, cfg.BootTimeout)
	w.watchdog = cfg.WatchdogTimeout
	s.recycleLimits(w)
	s.track(w)
	s.setState(w, Starting)
	s.spawns++
	s.workerLog(w).Debugf("spawned worker %d of generation %d", n, gen)
	if rOut != nil {
		w.outR, w.errR = rOut, rErr
		s.pumpOutput(w, pumped)
	}
	return w, nil
}

// track makes w known by pid and id.
func (s *Supervisor) track(w *worker) {
	s.byPID[w.pid] = w
	s.byID[w.id] = w
	s.workerPIDs.Store(w.pid, w.proc)
}

// outputWait bounds how long an exit waits for the worker's last output:
// a descendant that escaped with the pipe open must not hold it back.
const outputWait = 250 * time.Millisecond

// afterOutput sends the exit event once the worker's output was read to
// the end (or a moment passed), so that its last line is known.
func (s *Supervisor) afterOutput(w *worker, ws unix.WaitStatus, pumped <-chan struct{}) {
	select {
	case <-pumped:
	case <-time.After(outputWait):
	}
	s.send(exitEvent{w: w, status: ws})
}

// send hands an event to the loop unless Run has returned.
func (s *Supervisor) send(ev any) {
	select {
	case s.events <- ev:
	case <-s.done:
	}
}

func (s *Supervisor) onExec(ev execEvent) {
	w := ev.w
	if ev.errMsg != "" {
		// The shim exits 127 right after; the exit event records the
		// failure, this records why.
		w.execErr = ev.errMsg
		s.workerLog(w).Errorf("spawn worker %d: %s", w.slot, printable.Escape(ev.errMsg))
		return
	}
	if w.cfg.Readiness == config.ReadinessExec && w.state == Starting {
		s.becameReady(w)
	}
}

// becameReady is READY=1 (or, with exec readiness, the exec).
func (s *Supervisor) becameReady(w *worker) {
	s.setState(w, Ready)
	s.workerLog(w).Infof("worker %d ready after %s", w.slot, w.readyAt.Sub(w.spawned).Round(time.Millisecond))
	if sl := s.slotOf(w); sl != nil && sl.next == w {
		if r := s.rollout; r != nil && w.gen == r.gen {
			s.nextReady(r, sl)
		} else {
			s.promoteRecycled(sl)
		}
	}
}

// stopWorker starts one worker's stop: SIGTERM (SIGINT for a fast stop) to
// its main process now, SIGKILL to everything it forked when the budget
// runs out (systemd's KillMode=mixed). A worker already on the ladder
// keeps its step; a fast stop only shortens a graceful one.
func (s *Supervisor) stopWorker(w *worker, reason StopReason, detail string) {
	sig := syscall.SIGTERM
	if reason == StopPoolFast {
		sig = syscall.SIGINT
	}
	switch w.state {
	case Starting, Ready:
	case Stopping:
		if reason == StopPoolFast && (w.deadline.IsZero() || w.deadline.After(s.now().Add(FastStopTimeout))) {
			w.deadline, w.budget = s.now().Add(FastStopTimeout), FastStopTimeout
			s.arm(&w.alarm, w.deadline)
			s.signal(w, sig)
		}
		return
	default:
		return
	}
	w.reason, w.detail = reason, detail
	s.setState(w, Stopping)
	s.signal(w, sig)
}

func (s *Supervisor) signal(w *worker, sig syscall.Signal) {
	if err := w.proc.Signal(sig); err != nil {
		s.log.Error(fmt.Errorf("signal worker %d (pid %d) with %s: %w", w.slot, w.pid, signalName(sig), err))
	}
}

// retire detaches w from its slot and stops it: nothing replaces it.
func (s *Supervisor) retire(w *worker, reason StopReason, detail string) {
	w.retired = true
	s.stopWorker(w, reason, detail)
}

// stoppingItself is STOPPING=1 from a worker: it leaves on its own (say,
// it recycles itself). It stops counting as ready, its slot gets a new
// worker now, and graceful-timeout bounds how long it may take to go.
func (s *Supervisor) stoppingItself(w *worker) {
	s.workerLog(w).Infof("worker %d is stopping on its own (STOPPING=1)", w.slot)
	w.reason, w.detail = StopSelf, "it said STOPPING=1"
	s.setState(w, Stopping)
	s.leaving(w, "said STOPPING=1")
}

// leaving takes a worker out of its slot because it is going by itself
// (STOPPING=1, or an exit baton did not ask for), and schedules the slot.
func (s *Supervisor) leaving(w *worker, how string) {
	if w.retired {
		return
	}
	w.retired = true
	sl := s.slotOf(w)
	if sl == nil {
		return
	}
	now := s.now()
	if sl.next == w {
		sl.next = nil
		s.nNext--
		s.nextFailed(sl, w, w.failedWith(how, now))
		return
	}
	if sl.w != w {
		return
	}
	sl.w = nil
	if r := s.rollout; r != nil && w.gen == r.gen && !r.rollback {
		// A new-generation worker that leaves during its rollout (or the
		// settle window after) fails it.
		s.rolloutFailed(w.failedWith(how, now))
		return
	}
	f := w.failedWith(how, now)
	readyFor := time.Duration(0)
	if !w.readyAt.IsZero() {
		readyFor = now.Sub(w.readyAt)
	}
	if readyFor >= startStable {
		s.everReady = true
	}
	switch {
	case w.reason.Failure():
		s.slotFailed(sl, f)
	case readyFor >= stableAfter:
		// Long-lived: a crash counts once, a clean exit not at all.
		sl.failures = 0
		if strings.Contains(how, "with status 0") || w.reason == StopSelf {
			sl.lastExit = how
			s.log.WithFields(s.fields(w)).Infof("worker %d %s after %s; replacing it", w.slot, how, since(readyFor))
			s.arm(&sl.alarm, now)
			return
		}
		s.slotFailed(sl, f)
	default:
		// Before readiness, or soon after: whatever the status, a worker
		// that keeps leaving is crash-looping and is backed off.
		s.slotFailed(sl, f)
	}
}

// slotFailed schedules a slot's respawn after a failure, with backoff; a
// pool that never had a ready worker gives up after StartAttempts.
func (s *Supervisor) slotFailed(sl *slot, f *WorkerFailure) {
	sl.failures++
	sl.lastExit = f.How
	sl.lastFailure = f
	s.statusDirty = true
	if !s.everReady && sl.failures >= StartAttempts && s.phase == phaseRunning && !s.readyLongEnough() {
		s.giveUp(&StartError{Attempts: sl.failures, Last: f})
		return
	}
	d := backoff(sl.failures)
	s.arm(&sl.alarm, s.now().Add(d))
	entry := s.log.WithFields(logrus.Fields{"worker": sl.n, "failures": sl.failures, "delay": d.String()})
	if sl.failures >= degradedAfter {
		entry.Warnf("respawning worker %d in %s: crash-looping, %d failures in a row (last: %s)", sl.n, d, sl.failures, f.How)
	} else {
		entry.Infof("respawning worker %d in %s", sl.n, d)
	}
}

// readyLongEnough reports whether a live worker has been ready for
// startStable, and remembers it.
func (s *Supervisor) readyLongEnough() bool {
	now := s.now()
	for _, w := range s.byPID {
		if w.state == Ready && now.Sub(w.readyAt) >= startStable {
			s.everReady = true
			return true
		}
	}
	return false
}

// workerFailed is a clock's verdict on a worker that is still running: its
// slot moves on now, without waiting for the ladder to finish.
func (s *Supervisor) workerFailed(w *worker, f *WorkerFailure) {
	if w.retired {
		return
	}
	s.leaving(w, f.How)
}

func (s *Supervisor) onExit(ev exitEvent) {
	w := ev.w
	delete(s.byPID, w.pid)
	delete(s.byID, w.id)
	s.workerPIDs.Delete(w.pid)
	if w.mainPID != 0 {
		delete(s.mainPIDs, w.mainPID)
	}
	s.rememberExit(w.pid)
	// Whatever the worker forked dies with it, as under KillMode=mixed.
	if err := w.proc.KillAll(); err != nil {
		s.log.Error(fmt.Errorf("kill what worker %d (pid %d) left behind: %w", w.slot, w.pid, err))
	}
	how, _ := describeExit(ev.status)
	wasStopping := w.state.stopping()
	s.setState(w, Exited)
	if err := errors.Join(w.proc.Release(), w.closeBoard()); err != nil {
		s.log.WithError(err).Warnf("release worker %d", w.slot)
	}
	s.exits[s.exitMetric(w, ev.status)]++
	fields := s.fields(w)
	age := s.now().Sub(w.spawned)
	if w.status != "" {
		fields["status"] = printable.Escape(w.status)
	}
	switch {
	case w.retired || s.phase == phaseStopping:
		if w.detail != "" {
			how += " (" + w.detail + ")"
		}
		s.log.WithFields(fields).Infof("worker %d of generation %d %s", w.slot, w.gen, how)
		// Only the last worker of a dropped socket set frees a socket; the
		// check walks every worker, so not for each exit of a reload.
		if len(s.notIn(w.sockets, s.sockets)) > 0 {
			s.closeUnusedSockets()
		}
		return
	case wasStopping && w.reason == StopSelf:
		// Already left its slot when it said STOPPING=1.
		s.log.WithFields(fields).Infof("worker %d %s after %s", w.slot, how, since(age))
		return
	}
	if w.readyAt.IsZero() {
		s.log.WithFields(fields).Errorf("worker %d of generation %d %s after %s, before it was ready", w.slot, w.gen, how, since(age))
	} else {
		s.log.WithFields(fields).Errorf("worker %d of generation %d %s after %s", w.slot, w.gen, how, since(age))
	}
	if w.execErr != "" {
		how += " (" + printable.Escape(w.execErr) + ")"
	}
	s.leaving(w, how)
}

func (s *Supervisor) fields(w *worker) logrus.Fields {
	return logrus.Fields{"worker": w.slot, "pid": w.pid, "generation": w.gen, "age": since(s.now().Sub(w.spawned))}
}

// exitMetric classifies an exit for baton_worker_exits_total.
func (s *Supervisor) exitMetric(w *worker, ws unix.WaitStatus) string {
	if m := w.reason.Metric(); m != "" && w.reason != StopSelf {
		return m
	}
	if _, clean := describeExit(ws); clean {
		return "exit"
	}
	return "crash"
}

// beginStop stops the whole pool. A fast stop may follow a graceful one
// (a second Ctrl-C) and shortens it. With drain-delay, a graceful stop
// first only turns baton unready (STATUS=, /readyz) and waits, so that
// load balancers stop sending before any worker stops accepting.
func (s *Supervisor) beginStop(mode StopMode) {
	if s.phase == phaseStopping && (mode == Graceful || s.stopMode == Fast) {
		return
	}
	if mode == Graceful && s.phase == phaseRunning && s.cfg.DrainDelay > 0 {
		s.phase = phaseDraining
		s.statusDirty = true
		s.abandonReloads()
		s.log.Infof("graceful stop: unready now, stopping workers in %s (drain-delay)", s.cfg.DrainDelay)
		s.arm(&s.drainAlarm, s.now().Add(s.cfg.DrainDelay))
		s.sendUp("STOPPING=1")
		return
	}
	s.disarm(&s.drainAlarm)
	s.phase, s.stopMode = phaseStopping, mode
	s.unready.Store(true)
	s.statusDirty = true
	s.abandonReloads()
	kind, reason := "graceful", StopPool
	if mode == Fast {
		kind, reason = "fast", StopPoolFast
	}
	s.log.WithField("workers", len(s.byPID)).Infof("%s stop: stopping %d workers", kind, len(s.byPID))
	for _, sl := range s.slots {
		s.disarm(&sl.alarm)
	}
	for _, w := range s.byPID {
		s.stopWorker(w, reason, kind+" stop")
	}
	// After the workers' kill deadlines are set: they size the budget.
	s.extendStop("STOPPING=1\n")
	if s.upward == nil {
		s.sendUp("STOPPING=1")
	}
}

// giveUp stops the pool because it can never work; Run returns err.
func (s *Supervisor) giveUp(err error) {
	s.runErr = err
	s.log.Error(err)
	s.beginStop(Graceful)
}

// abandonReloads answers every reload in flight or queued: baton stops.
func (s *Supervisor) abandonReloads() {
	if r := s.rollout; r != nil {
		s.rollout = nil
		s.disarm(&r.alarm)
		s.disarm(&s.reloadExtendAlarm)
		err := fmt.Errorf("reload to generation %d abandoned: %w", r.gen, ErrStopping)
		if r.failure != nil {
			err = r.failure // a rollback: the reload had failed already
		}
		for _, c := range r.waiters {
			c <- err
		}
	}
	if q := s.queued; q != nil {
		s.queued = nil
		s.closeSockets(s.notIn(q.sockets, s.sockets))
		for _, c := range q.waiters {
			c <- fmt.Errorf("queued reload abandoned: %w", ErrStopping)
		}
	}
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

func (s *Supervisor) slotOf(w *worker) *slot {
	if w.slot < 1 || w.slot > len(s.slots) {
		return nil
	}
	sl := s.slots[w.slot-1]
	if sl.w != w && sl.next != w {
		return nil
	}
	return sl
}

func (s *Supervisor) workerLog(w *worker) logrus.FieldLogger {
	return s.log.WithFields(logrus.Fields{"worker": w.slot, "pid": w.pid, "generation": w.gen})
}
