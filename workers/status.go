package workers

import (
	"fmt"

	"github.com/batonhq/baton/activation"
	"sort"
	"time"
)

// WorkerInfo describes one worker in a Snapshot.
type WorkerInfo struct {
	Slot, PID, Generation int
	State                 State
	Spawned, ReadyAt      time.Time
	Status                string
	LastHeartbeat         time.Time // zero: none yet (or not ready)
	OldestRequest         time.Time // zero: none in flight (or not reported)
	Retiring              bool      // being replaced, recycled or scaled away
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
	Recycled   int // workers recycled so far
	Sockets    []SocketInfo
	Taken      time.Time
	Spawns     int            // workers spawned so far
	Exits      map[string]int // worker exits by reason
	// ReloadsOK and ReloadsFailed count finished reloads; ReloadSeconds is
	// their total duration.
	ReloadsOK, ReloadsFailed int
	ReloadSeconds            float64
}

type snapshotRequest struct{ reply chan Snapshot }

// Snapshot asks the Run goroutine for the pool's state. ok is false once Run
// has returned.
func (s *Supervisor) Snapshot() (snap Snapshot, ok bool) {
	req := snapshotRequest{reply: make(chan Snapshot, 1)}
	select {
	case s.requests <- req:
		return <-req.reply, true
	case <-s.done:
		return Snapshot{}, false
	}
}

func (s *Supervisor) answer(req any) {
	switch r := req.(type) {
	case snapshotRequest:
		r.reply <- s.snapshot()
	case socketsRequest:
		r.reply <- append(activation.Set(nil), s.sockets...)
	}
}

func (s *Supervisor) snapshot() Snapshot {
	snap := Snapshot{Generation: s.gen, Wanted: s.cfg.Workers, Ready: s.ready(), Status: s.statusLine(), Dropped: map[string]int{}, Failures: map[int]int{}}
	for k, v := range s.dropped {
		snap.Dropped[k] = v
	}
	for _, w := range s.byPID {
		_, oldest := w.oldestRequest()
		snap.Workers = append(snap.Workers, WorkerInfo{
			Slot: w.slot, PID: w.pid, Generation: w.gen, State: w.state, Spawned: w.spawned, ReadyAt: w.readyAt,
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
	return snap
}

func (s *Supervisor) ready() int {
	n := 0
	for _, w := range s.byPID {
		if w.state == Ready {
			n++
		}
	}
	return n
}

func (s *Supervisor) statusLine() string {
	if s.stopping {
		return fmt.Sprintf("stopping: %d workers left, generation %d", len(s.byPID), s.gen)
	}
	line := fmt.Sprintf("%d/%d workers ready, generation %d", s.ready(), s.cfg.Workers, s.gen)
	if r := s.rollout; r != nil {
		verb := "reloading to"
		if r.rollback {
			verb = "rolling back to"
		}
		line += fmt.Sprintf(", %s generation %d (%d/%d replaced)", verb, r.gen, r.promoted, r.cfg.Workers)
	} else if s.lastReloadErr != "" {
		line += ", last reload failed: " + s.lastReloadErr
	}
	if d := s.degraded(); d != "" {
		line += ", " + d
	}
	return line
}

// publish tells systemd what changed: READY=1 once min-ready workers are
// ready, and STATUS= whenever the line changes.
func (s *Supervisor) publish() {
	line := s.statusLine()
	msg := ""
	if !s.sentReady && !s.stopping && s.ready() >= s.cfg.MinReady {
		s.sentReady = true
		msg = "READY=1\n"
		s.log.Infof("pool ready: %s", line)
	}
	if line != s.lastStatus {
		s.lastStatus = line
		msg += "STATUS=" + line
	}
	if msg != "" {
		s.sendUp(msg)
	}
}

func (s *Supervisor) sendUp(state string) {
	if s.upward == nil {
		return
	}
	if err := s.upward.Send(state); err != nil {
		s.log.WithError(err).Warn("notify systemd")
	}
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
