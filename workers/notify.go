package workers

import (
	"errors"
	"os"
	"syscall"

	"github.com/batonhq/baton/internal/procfs"
	"github.com/batonhq/baton/internal/sdnotify"
	"github.com/sirupsen/logrus"
)

// notifyEvent is a datagram with its sender's ancestry (the sender alone
// when it is a worker itself, the common case).
type notifyEvent struct {
	dg    *sdnotify.Datagram
	chain []int // sender pid, its parent, grandparent, ... up to baton
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

// watchNotifications tells the loop when datagrams wait on the notify
// socket, and waits until it has read them: the loop reads every datagram
// itself, in order, so that it can read everything queued whenever it
// must (before judging any clock) and nothing is in flight elsewhere.
func (s *Supervisor) watchNotifications(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		if err := s.notify.WaitReadable(); err != nil {
			return // closed by Run
		}
		select {
		case s.readable <- struct{}{}:
		case <-stop:
			return
		}
		select {
		case <-s.readDone:
		case <-stop:
			return
		}
	}
}

// readBatch bounds the datagrams read in one go, so that a flood shares the
// loop with exits, timers and requests.
const readBatch = 256

// readNotifications handles up to limit queued datagrams; it reports
// whether the socket is empty, and how many it read.
func (s *Supervisor) readNotifications(limit int) (bool, int) {
	for i := 0; i < limit; i++ {
		dg, err := s.notify.ReceiveNow()
		var drop *sdnotify.DropError
		switch {
		case errors.Is(err, sdnotify.ErrNoDatagram):
			return true, i
		case errors.As(err, &drop):
			s.countDrop(drop.PID, string(drop.Kind), drop.Reason)
			continue
		case err != nil:
			return true, i // closed
		}
		chain := []int{dg.PID}
		if _, direct := s.byPID[dg.PID]; !direct {
			chain = ancestry(dg.PID)
		}
		s.onNotify(notifyEvent{dg: dg, chain: chain})
	}
	return false, limit
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

// drainLimit bounds one drain, so that a flood cannot keep the loop from
// its clocks for ever.
const drainLimit = 20000

// drainEvents handles everything already queued — events, and datagrams
// still in the notify socket — so that no clock is judged on stale news:
// a supervisor that was stalled reads the heartbeats that arrived in the
// meantime before it decides any worker is hung.
//
// A drain that finds the socket backed up (backlog datagrams or more)
// also gives clocks a moment's grace: senders that found the queue full
// (the kernel queues 512 datagrams per socket by default) may still be
// blocked with their heartbeats.
func (s *Supervisor) drainEvents() {
	datagrams := 0
	defer func() {
		if datagrams >= backlog {
			s.backlogged(datagrams, s.now())
		}
	}()
	for n := 0; n < drainLimit; {
		select {
		case ev := <-s.events:
			s.handle(ev)
			n++
			continue
		default:
		}
		empty, read := s.readNotifications(readBatch)
		datagrams += read
		if empty {
			return
		}
		n += readBatch
	}
}

// backlog is how many datagrams waiting at a drain count as a backlog.
const backlog = 256

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
