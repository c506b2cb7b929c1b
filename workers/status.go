package workers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/batonhq/baton/activation"
)

// WorkerInfo describes one worker in a Snapshot.
type WorkerInfo struct {
	Slot, PID, Generation int
	State                 State
	// StopReason says why a stopping worker stops; NoStop otherwise.
	StopReason       StopReason
	Spawned, ReadyAt time.Time
	Status           string
	LastHeartbeat    time.Time // zero: none yet (or not ready)
	OldestRequest    time.Time // zero: none in flight (or not reported)
	Retiring         bool      // being replaced, recycled or scaled away
}

// SocketInfo describes one socket in a Snapshot.
type SocketInfo struct{ Name, Address, Origin string }

// Snapshot is the pool as the Run goroutine sees it.
type Snapshot struct {
	Generation int
	Workers    []WorkerInfo // sorted by slot
	Ready      int
	Wanted     int
	Status     string         // the STATUS= line
	Dropped    map[string]int // discarded notifications by kind
	Failures   map[int]int    // consecutive failures by slot
	Reloads    []ReloadResult // the last ten, oldest first
	Reloading  bool
	// ReloadQueued: a reload waits for the current one.
	ReloadQueued bool
	// Stopping: a stop began (drain-delay included).
	Stopping bool
	Recycled int // workers recycled so far
	Sockets  []SocketInfo
	Taken    time.Time
	Spawns   int            // workers spawned so far
	Exits    map[string]int // worker exits by reason
	// ReloadsOK and ReloadsFailed count finished reloads; ReloadSeconds is
	// their total duration.
	ReloadsOK, ReloadsFailed int
	ReloadSeconds            float64
	// Orphans is how many processes baton reaped that it did not start
	// (it adopts orphans as PID 1 or as a child subreaper).
	Orphans int
}

type snapshotRequest struct{ reply chan Snapshot }

// Snapshot asks the Run goroutine for the pool's state. ok is false once Run
// has returned.
func (s *Supervisor) Snapshot() (snap Snapshot, ok bool) {
	snap, err := s.SnapshotContext(context.Background())
	return snap, err == nil
}

// ErrNotRunning is returned once Run has returned.
var ErrNotRunning = errors.New("baton's supervisor is not running")

// SnapshotContext is Snapshot bounded by ctx.
func (s *Supervisor) SnapshotContext(ctx context.Context) (Snapshot, error) {
	req := snapshotRequest{reply: make(chan Snapshot, 1)}
	select {
	case s.requests <- req:
	case <-s.done:
		return Snapshot{}, ErrNotRunning
	case <-ctx.Done():
		return Snapshot{}, ctx.Err()
	}
	select {
	case snap := <-req.reply:
		return snap, nil
	case <-s.done:
		return Snapshot{}, ErrNotRunning
	case <-ctx.Done():
		return Snapshot{}, ctx.Err()
	}
}

// Alive reports whether the event loop answers, within ctx: what a
// liveness probe asks.
func (s *Supervisor) Alive(ctx context.Context) error {
	req := pingRequest{reply: make(chan struct{}, 1)}
	select {
	case s.requests <- req:
	case <-s.done:
		return ErrNotRunning
	case <-ctx.Done():
		return fmt.Errorf("the event loop did not answer: %w", ctx.Err())
	}
	select {
	case <-req.reply:
		return nil
	case <-s.done:
		return ErrNotRunning
	case <-ctx.Done():
		return fmt.Errorf("the event loop did not answer: %w", ctx.Err())
	}
}

type pingRequest struct{ reply chan struct{} }

// Serving reports whether at least min-ready workers are ready and no stop
// has begun: what a readiness probe asks. It is false from the moment
// Stop is called, before any worker is told to stop, so an orchestrator
// stops sending traffic first. Safe from any goroutine; costs no round
// trip through the loop.
func (s *Supervisor) Serving() bool { return s.serving.Load() && !s.unready.Load() }

func (s *Supervisor) answer(req any) {
	switch r := req.(type) {
	case snapshotRequest:
		r.reply <- s.snapshot()
	case socketsRequest:
		r.reply <- append(activation.Set(nil), s.sockets...)
	case pingRequest:
		r.reply <- struct{}{}
	}
}

func (s *Supervisor) snapshot() Snapshot {
	snap := Snapshot{Generation: s.gen, Wanted: s.cfg.Workers, Ready: s.nReady, Status: s.statusLine(), Dropped: map[string]int{}, Failures: map[int]int{}}
	for k, v := range s.dropped {
		snap.Dropped[k] = v
	}
	for _, w := range s.byPID {
		_, oldest, _ := w.oldestRequest()
		snap.Workers = append(snap.Workers, WorkerInfo{
			Slot: w.slot, PID: w.pid, Generation: w.gen, State: w.state, StopReason: w.reason, Spawned: w.spawned, ReadyAt: w.readyAt,
			Status: w.status, LastHeartbeat: w.lastHeartbeat, OldestRequest: oldest, Retiring: w.retired,
		})
	}
	sort.Slice(snap.Workers, func(i, j int) bool {
		a, b := snap.Workers[i], snap.Workers[j]
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		return a.Spawned.Before(b.Spawned)
	})
	for _, sl := range s.slots {
		snap.Failures[sl.n] = sl.failures
	}
	snap.Reloads = append(snap.Reloads, s.reloads...)
	snap.Reloading = s.rollout != nil
	snap.ReloadQueued = s.queued != nil
	snap.Stopping = s.phase != phaseRunning
	snap.Recycled = s.recycled
	snap.Taken = s.now()
	snap.Spawns = s.spawns
	snap.Exits = map[string]int{}
	for k, v := range s.exits {
		snap.Exits[k] = v
	}
	snap.ReloadsOK, snap.ReloadsFailed, snap.ReloadSeconds = s.reloadsOK, s.reloadsFailed, s.reloadSeconds
	for _, x := range s.sockets {
		snap.Sockets = append(snap.Sockets, SocketInfo{Name: x.Name, Address: x.Addr, Origin: string(x.Origin)})
	}
	snap.Orphans = s.orphans()
	return snap
}

func (s *Supervisor) statusLine() string {
	switch s.phase {
	case phaseDraining:
		return fmt.Sprintf("draining: unready, %d/%d workers still serving, generation %d", s.nReady, s.cfg.Workers, s.gen)
	case phaseStopping:
		return fmt.Sprintf("stopping: %d workers left, generation %d", len(s.byPID), s.gen)
	}
	line := fmt.Sprintf("%d/%d workers ready, generation %d", s.nReady, s.cfg.Workers, s.gen)
	if r := s.rollout; r != nil {
		verb := "reloading to"
		if r.rollback {
			verb = "rolling back to"
		}
		line += fmt.Sprintf(", %s generation %d (%d/%d replaced", verb, r.gen, r.promoted, r.cfg.Workers)
		switch {
		case r.phase == phaseCanary && r.canary != nil:
			line += ", canary settling"
		case r.phase == phaseSettling:
			line += ", settling"
		}
		line += ")"
		if s.queued != nil {
			line += ", another reload queued"
		}
	} else if s.lastReloadErr != "" {
		line += ", last reload failed: " + s.lastReloadErr
	}
	if d := s.degraded(); d != "" {
		line += ", " + d
	}
	return line
}

// statusEvery bounds how often STATUS= is sent while the pool changes
// fast (a 1,000-worker reload changes it thousands of times a second).
const statusEvery = 100 * time.Millisecond

// publish tells systemd what changed: READY=1 once min-ready workers are
// ready, and STATUS= when the line changed (at most every statusEvery).
func (s *Supervisor) publish() {
	s.serving.Store(s.phase == phaseRunning && s.nReady >= s.cfg.MinReady)
	if !s.sentReady && s.phase == phaseRunning && s.nReady >= s.cfg.MinReady {
		s.sentReady = true
		line := s.statusLine()
		s.lastStatus, s.statusDirty = line, false
		s.log.Infof("pool ready: %s", line)
		s.sendUp("READY=1\nSTATUS=" + line)
		return
	}
	if !s.statusDirty {
		return
	}
	now := s.now()
	if now.Before(s.nextStatus) {
		s.armEarlier(&s.statusAlarm, s.nextStatus)
		return
	}
	s.sendStatus(now)
}

// publishNow sends STATUS= at once if the line changed, whatever the rate
// limit: an outcome an operator waits for (a reload's) must not wait for
// the next tick.
func (s *Supervisor) publishNow() {
	if !s.sentReady {
		s.publish() // READY=1 comes first, with its own STATUS=
		return
	}
	s.sendStatus(s.now())
}

// sendStatus sends the status line if it changed, and starts the next
// rate-limit interval.
func (s *Supervisor) sendStatus(now time.Time) {
	s.statusDirty = false
	line := s.statusLine()
	if line == s.lastStatus {
		return
	}
	s.lastStatus = line
	s.nextStatus = now.Add(statusEvery)
	s.sendUp("STATUS=" + line)
}

// afterUpward runs f once everything queued for systemd so far was sent,
// or after upwardWait if a manager that does not read holds the queue: an
// answer is late then, never lost. f must not block and runs once.
func (s *Supervisor) afterUpward(f func()) {
	var once sync.Once
	run := func() { once.Do(f) }
	if s.sendUpHook == nil && s.upward != nil && s.upward.call(func() error { run(); return nil }) {
		time.AfterFunc(upwardWait, run)
		return
	}
	run() // sends are synchronous in tests, and a closed queue sends nothing
}

// upwardWait bounds how long an answer waits for systemd to hear first.
const upwardWait = 2 * time.Second

func (s *Supervisor) sendUp(state string) {
	if s.sendUpHook != nil {
		s.sendUpHook(state)
		return
	}
	if s.upward == nil {
		return
	}
	s.upward.send(state)
}

type socketsRequest struct{ reply chan activation.Set }

// Sockets returns the current socket set (the one new workers get). ok is
// false once Run has returned.
func (s *Supervisor) Sockets() (activation.Set, bool) {
	req := socketsRequest{reply: make(chan activation.Set, 1)}
	select {
	case s.requests <- req:
		return <-req.reply, true
	case <-s.done:
		return nil, false
	}
}
