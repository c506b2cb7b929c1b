package workers

import (
	"errors"
	"os"
	"strings"
	"syscall"

	"github.com/batonhq/baton/internal/procfs"
	"github.com/batonhq/baton/internal/sdnotify"
	"github.com/sirupsen/logrus"
)

// notifyEvent is a datagram with its sender's ancestry, resolved by the
// reader at once: a short-lived sender (systemd-notify) may be gone by the
// time the loop looks.
type notifyEvent struct {
	dg    *sdnotify.Datagram
	chain []int // sender pid, its parent, grandparent, ... up to init
}

// dropEvent is a datagram the listener already discarded.
type dropEvent struct {
	pid    int
	reason string
}

// maxAncestry bounds the walk up the process tree.
const maxAncestry = 64

func (s *Supervisor) readNotifications(done chan<- struct{}) {
	defer close(done)
	for {
		dg, err := s.notify.Receive()
		var drop *sdnotify.DropError
		switch {
		case errors.As(err, &drop):
			s.events <- dropEvent{pid: drop.PID, reason: drop.Reason}
			continue
		case err != nil:
			return // socket closed by Run
		}
		s.events <- notifyEvent{dg: dg, chain: ancestry(dg.PID)}
	}
}

// ancestry returns pid and its ancestors, read from /proc, up to baton
// itself: every worker is baton's child, so nothing above can be one. A
// worker's own datagram (the common case, twice per reported request)
// costs one read.
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

// attribute finds the worker a sender belongs to: the worker itself, a
// process it named with MAINPID=, or a descendant.
func (s *Supervisor) attribute(chain []int) *worker {
	for _, pid := range chain {
		if w, ok := s.byPID[pid]; ok {
			return w
		}
		for _, w := range s.byPID {
			if w.mainPID == pid {
				return w
			}
		}
	}
	return nil
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
			s.dropped["late"]++
			return
		}
		s.countDrop(ev.dg.PID, "sender is not a worker nor a worker's descendant")
		return
	}
	m := ev.dg.Message
	log := s.workerLog(w)
	if len(ev.dg.FDs) > 0 && !m.Barrier {
		log.Warnf("worker %d sent %d file descriptors; workers have no fd store, closed them", w.slot, len(ev.dg.FDs))
	}
	if m.Status != nil {
		w.status = *m.Status
	}
	if m.Errno != nil {
		log.Warnf("worker %d reports errno %d (%s)", w.slot, *m.Errno, syscall.Errno(*m.Errno).Error())
	}
	if m.MainPID != nil && *m.MainPID != w.pid {
		w.mainPID = *m.MainPID
		log.Infof("worker %d names pid %d as its main process", w.slot, w.mainPID)
	}
	now := s.now()
	if m.Ready && w.state == Starting {
		s.markReady(w)
	}
	s.onRequests(w, m, now)
	s.onClocks(w, m, now)
	if v, ok := m.Get(FieldRecycle); ok && v == "1" {
		s.wantRecycle(w, "the worker asked ("+FieldRecycle+"=1)")
	}
	if m.Stopping && w.state != Stopping {
		// The worker is leaving on its own (e.g. it recycles itself): stop
		// counting it as ready and replace it when it exits.
		w.state = Stopping
		w.stopReason = "worker said STOPPING=1"
		log.Infof("worker %d is stopping on its own", w.slot)
	}
}

// countDrop counts a discarded datagram. Logging is rate-limited to powers
// of two so that a flooding process cannot flood the log too.
func (s *Supervisor) countDrop(pid int, reason string) {
	s.droppedN++
	s.dropped[dropKind(reason)]++
	if n := s.droppedN; n&(n-1) == 0 {
		s.log.WithFields(logrus.Fields{"sender_pid": pid, "dropped_total": n}).Warnf("dropped notification from pid %d: %s", pid, reason)
	}
}

func dropKind(reason string) string {
	switch {
	case strings.HasPrefix(reason, "sender is not"):
		return "foreign"
	case strings.Contains(reason, "larger than"):
		return "oversized"
	default:
		return "malformed"
	}
}

// exitedMemory is how many exited worker pids are remembered to recognise
// their late notifications.
const exitedMemory = 256

func (s *Supervisor) rememberExit(pid int) {
	s.exited = append(s.exited, pid)
	if len(s.exited) > exitedMemory {
		s.exited = s.exited[1:]
	}
}

func (s *Supervisor) recentlyExited(chain []int) bool {
	for _, pid := range chain {
		for _, e := range s.exited {
			if e == pid {
				return true
			}
		}
	}
	return false
}
