package workers

import (
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/procfs"
	"github.com/batonhq/baton/internal/sdnotify"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// notifyEvent is a datagram with its sender's ancestry, resolved by the
// reader at once: a short-lived sender (systemd-notify) may be gone by the
// time the loop looks. A worker's own datagram, the common case, needs no
// /proc lookup at all.
type notifyEvent struct {
	dg    *sdnotify.Datagram
	chain []int // sender pid, its parent, grandparent, ... up to baton
}

// dropEvent is a datagram the listener already discarded.
type dropEvent struct {
	pid    int
	kind   string
	reason string
}

// Kinds of dropped notifications, for metrics.
const (
	dropForeign   = "foreign"
	dropOversized = "oversized"
	dropMalformed = "malformed"
	dropFlood     = "flood"
	dropMainPID   = "mainpid"
	dropLate      = "late"
)

// maxAncestry bounds the walk up the process tree.
const maxAncestry = 64

func (s *Supervisor) readNotifications(done chan<- struct{}) {
	defer close(done)
	for {
		dg, err := s.notify.Receive()
		var drop *sdnotify.DropError
		switch {
		case errors.As(err, &drop):
			s.events <- dropEvent{pid: drop.PID, kind: string(drop.Kind), reason: drop.Reason}
			continue
		case err != nil:
			return // socket closed by Run
		}
		chain := []int{dg.PID}
		if _, direct := s.workerPIDs.Load(dg.PID); !direct {
			chain = ancestry(dg.PID)
		}
		s.events <- notifyEvent{dg: dg, chain: chain}
	}
}

// ancestry returns pid and its ancestors, read from /proc, up to baton
// itself: every worker is baton's child, so nothing above can be one.
func ancestry(pid int) []int {
	chain := []int{pid}
	self := os.Getpid()
	for len(chain) < maxAncestry && pid > 1 && pid != self {
		pid = procfs.Parent(pid)
		if pid <= 0 {
			break
		}
		chain = append(chain, pid)
	}
	return chain
}

// notifyPending reports whether a datagram waits on the notify socket.
func (s *Supervisor) notifyPending() bool {
	fd, err := s.notify.FD()
	if err != nil {
		return false
	}
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(p, 0)
	return err == nil && n > 0 && p[0].Revents&unix.POLLIN != 0
}

// drainLimit bounds one drain, so that a flood cannot keep the loop from
// its clocks for ever.
const (
	drainLimit = 20000
	drainWait  = 50 * time.Millisecond
)

// drainEvents handles everything already queued — events, and datagrams
// still in the notify socket — so that no clock is judged on stale news:
// a supervisor that was stalled reads the heartbeats that arrived in the
// meantime before it decides any worker is hung.
func (s *Supervisor) drainEvents() {
	for i := 0; i < drainLimit; i++ {
		select {
		case ev := <-s.events:
			s.handle(ev)
			continue
		default:
		}
		if !s.notifyPending() {
			return
		}
		t := time.NewTimer(drainWait)
		select {
		case ev := <-s.events:
			t.Stop()
			s.handle(ev)
		case <-t.C:
			return
		}
	}
}

// attribute finds the worker a sender belongs to: the worker itself, a
// process it named with MAINPID=, or a descendant.
func (s *Supervisor) attribute(chain []int) *worker {
	for _, pid := range chain {
		if w, ok := s.byPID[pid]; ok {
			return w
		}
		if w, ok := s.mainPIDs[pid]; ok {
			return w
		}
	}
	if s.contain != nil && len(chain) > 0 {
		if id, ok := s.contain.Owner(chain[0]); ok {
			return s.byID[id]
		}
	}
	return nil
}

// descends reports whether pid is w or one of its descendants.
func (s *Supervisor) descends(pid int, w *worker) bool {
	if s.contain != nil {
		if id, ok := s.contain.Owner(pid); ok {
			return id == w.id
		}
	}
	for _, p := range ancestry(pid) {
		if p == w.pid {
			return true
		}
	}
	return false
}

func (s *Supervisor) closeDatagram(dg *sdnotify.Datagram) {
	if err := dg.Close(); err != nil {
		s.log.WithError(err).Warn("notify socket")
	}
}

func (s *Supervisor) onNotify(ev notifyEvent) {
	// BARRIER=1's fd is closed only after the message (and everything
	// received before it) was processed, which is now.
	defer s.closeDatagram(ev.dg)
	w := s.attribute(ev.chain)
	if w == nil {
		if s.recentlyExited(ev.chain) {
			// A worker's last words (STOPPING=1, a request's end) can be
			// read after its exit was: not a spoof, nothing to act on.
			s.dropped[dropLate]++
			return
		}
		s.countDrop(ev.dg.PID, dropForeign, "sender is not a worker nor a worker's descendant")
		return
	}
	if w.state == Exited {
		s.dropped[dropLate]++
		return
	}
	m := ev.dg.Message
	if len(ev.dg.FDs) > 0 && !m.Barrier {
		s.workerLog(w).Warnf("worker %d sent %d file descriptors; workers have no fd store, closed them", w.slot, len(ev.dg.FDs))
	}
	if m.Status != nil {
		w.status = *m.Status
	}
	if m.Errno != nil {
		s.workerLog(w).Warnf("worker %d reports errno %d (%s)", w.slot, *m.Errno, syscall.Errno(*m.Errno).Error())
	}
	if m.MainPID != nil {
		s.onMainPID(w, *m.MainPID)
	}
	now := s.now()
	if m.Ready && w.state == Starting {
		s.becameReady(w)
	}
	s.onRequests(w, m, ev.dg.PID, now)
	s.onClocks(w, m, ev.dg.PID, now)
	if v, ok := m.Get(FieldRecycle); ok && v == "1" {
		s.wantRecycle(w, "the worker asked ("+FieldRecycle+"=1)")
	}
	if m.Stopping && (w.state == Starting || w.state == Ready) {
		s.stoppingItself(w)
	}
}

// onMainPID accepts a MAINPID= that names the worker or one of its
// descendants (a wrapper script's real server), as systemd refuses a
// MAINPID outside the service's cgroup: a worker may not make baton
// attribute, signal or count another process as its own.
func (s *Supervisor) onMainPID(w *worker, pid int) {
	if pid == w.pid || pid == w.mainPID {
		return
	}
	if pid <= 1 || !s.descends(pid, w) {
		s.countDrop(w.pid, dropMainPID, "MAINPID= names a process that is not the worker's own")
		s.workerLog(w).Warnf("worker %d named pid %d as its main process, which is neither the worker nor one of its descendants: refused", w.slot, pid)
		return
	}
	if w.mainPID != 0 {
		delete(s.mainPIDs, w.mainPID)
	}
	w.mainPID = pid
	s.mainPIDs[pid] = w
	s.workerLog(w).Infof("worker %d names pid %d as its main process", w.slot, pid)
}

// countDrop counts a discarded datagram. Logging is rate-limited to powers
// of two so that a flooding process cannot flood the log too.
func (s *Supervisor) countDrop(pid int, kind, reason string) {
	s.droppedN++
	s.dropped[kind]++
	if n := s.droppedN; n&(n-1) == 0 {
		s.log.WithFields(logrus.Fields{"sender_pid": pid, "dropped_total": n}).Warnf("dropped notification from pid %d: %s", pid, reason)
	}
}

// exitedMemory is how many exited worker pids are remembered to recognise
// their late notifications.
const exitedMemory = 256

func (s *Supervisor) rememberExit(pid int) {
	if len(s.exitedRing) < exitedMemory {
		s.exitedRing = append(s.exitedRing, pid)
	} else {
		delete(s.exited, s.exitedRing[s.exitedNext])
		s.exitedRing[s.exitedNext] = pid
		s.exitedNext = (s.exitedNext + 1) % exitedMemory
	}
	s.exited[pid] = true
}

func (s *Supervisor) recentlyExited(chain []int) bool {
	for _, pid := range chain {
		if s.exited[pid] {
			return true
		}
	}
	return false
}
