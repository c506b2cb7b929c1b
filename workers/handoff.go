package workers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/fdutil"
	"github.com/batonhq/baton/internal/proc"
	"golang.org/x/sys/unix"
)

// A handoff passes the pool to a new baton binary executed in place (same
// pid, so systemd and the workers, who stay its children, notice nothing):
// the fds that must survive exec lose close-on-exec, and their meaning is
// described in a Handoff that the new binary reads back (Options.Adopt).

// Handoff describes the pool for the baton that takes it over.
type Handoff struct {
	NotifyFD   int
	NotifyPath string
	Sockets    []HandoffSocket
	Gen        int
	LastGen    int
	Seq        int // worker ids used so far
	SentReady  bool
	EverReady  bool
	Workers    []HandoffWorker
}

// HandoffSocket is one socket of the current set.
type HandoffSocket struct {
	FD                 int
	Name, Addr, Origin string
}

// HandoffWorker is one live worker.
type HandoffWorker struct {
	ID               string
	Slot, PID, Gen   int
	State            State
	Reason           StopReason
	Detail           string
	Retired          bool
	Spawned, ReadyAt time.Time
	LastHeartbeat    time.Time
	Status           string
	StdoutFD         int // -1: the worker writes to baton's stdout
	StderrFD         int
}

type handoffRequest struct {
	reply  chan handoffReply
	resume chan struct{} // closed when the exec failed
}

type handoffReply struct {
	h   *Handoff
	err error
}

// PrepareHandoff pauses the supervisor and readies its fds for exec. On
// success the caller must exec, or call resume (the exec failed), after
// which the supervisor goes on as before.
func (s *Supervisor) PrepareHandoff(ctx context.Context) (h *Handoff, resume func(), err error) {
	req := handoffRequest{reply: make(chan handoffReply, 1), resume: make(chan struct{})}
	select {
	case s.events <- req:
	case <-s.done:
		return nil, nil, errors.New("baton is not running")
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	r := <-req.reply
	if r.err != nil {
		return nil, nil, r.err
	}
	return r.h, func() { close(req.resume) }, nil
}

func setCloexec(fd int, on bool) error {
	flag := 0
	if on {
		flag = unix.FD_CLOEXEC
	}
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flag)
	return err
}

// handoff runs in the loop: it builds the Handoff, then blocks the loop
// until the exec replaced the process or failed.
func (s *Supervisor) handoff(req handoffRequest) {
	switch {
	case s.phase != phaseRunning:
		req.reply <- handoffReply{err: ErrStopping}
		return
	case s.rollout != nil:
		req.reply <- handoffReply{err: fmt.Errorf("cannot upgrade now: %w", ErrReloadInProgress)}
		return
	}
	s.cancelRecycles()
	h := &Handoff{NotifyPath: s.notify.Path(), Gen: s.gen, LastGen: s.lastGen, Seq: s.seq, SentReady: s.sentReady, EverReady: s.everReady}
	var fds []int
	keep := func(fd int) error {
		if err := setCloexec(fd, false); err != nil {
			return err
		}
		fds = append(fds, fd)
		return nil
	}
	restore := func() {
		for _, fd := range fds {
			if err := setCloexec(fd, true); err != nil {
				s.log.WithError(err).Warn("handoff: restore close-on-exec")
			}
		}
	}
	fail := func(err error) {
		restore()
		req.reply <- handoffReply{err: fmt.Errorf("prepare upgrade: %w", err)}
	}
	fd, err := s.notify.FD()
	if err == nil {
		err = keep(fd)
	}
	if err != nil {
		fail(err)
		return
	}
	h.NotifyFD = fd
	for _, x := range s.sockets {
		fd, err := fdutil.Raw(x.File)
		if err == nil {
			err = keep(fd)
		}
		if err != nil {
			fail(err)
			return
		}
		h.Sockets = append(h.Sockets, HandoffSocket{FD: fd, Name: x.Name, Addr: x.Addr, Origin: string(x.Origin)})
	}
	for _, w := range s.byPID {
		hw := HandoffWorker{ID: w.id, Slot: w.slot, PID: w.pid, Gen: w.gen, State: w.state, Reason: w.reason, Detail: w.detail, Retired: w.retired, Spawned: w.spawned, ReadyAt: w.readyAt, LastHeartbeat: w.lastHeartbeat, Status: w.status, StdoutFD: -1, StderrFD: -1}
		if w.outR != nil {
			out, err1 := fdutil.Raw(w.outR)
			errFD, err2 := fdutil.Raw(w.errR)
			if err := errors.Join(err1, err2); err != nil {
				fail(err)
				return
			}
			if err := errors.Join(keep(out), keep(errFD)); err != nil {
				fail(err)
				return
			}
			hw.StdoutFD, hw.StderrFD = out, errFD
		}
		h.Workers = append(h.Workers, hw)
	}
	req.reply <- handoffReply{h: h}
	// The loop stops here: after a successful exec there is no loop; after
	// a failed one it goes on.
	<-req.resume
	restore()
	s.log.Warn("upgrade did not happen; this baton goes on")
}

// adopt takes over the workers of a handoff, in Run before anything else.
func (s *Supervisor) adopt(h *Handoff) {
	s.gen, s.lastGen, s.sentReady, s.everReady = h.Gen, h.LastGen, h.SentReady, h.EverReady || h.SentReady
	s.seq = h.Seq
	now := s.now()
	for _, hw := range h.Workers {
		id := hw.ID
		if id == "" {
			s.seq++
			id = fmt.Sprintf("w%d-g%d-a%d", hw.Slot, hw.Gen, s.seq)
		}
		w := &worker{
			id: id, slot: hw.Slot, gen: hw.Gen, cfg: s.cfg, sockets: s.sockets, pid: hw.PID, state: Starting,
			spawned: hw.Spawned, lastHeartbeat: hw.LastHeartbeat, status: hw.Status, retired: hw.Retired,
			reason: hw.Reason, detail: hw.Detail,
		}
		w.alarm = newAlarm(func(now time.Time) { s.workerAlarm(w, now) })
		exited := make(chan unix.WaitStatus, 1)
		p, err := s.spawner.Adopt(w.id, w.pid, func(ws unix.WaitStatus) { exited <- ws })
		if err != nil {
			s.log.WithError(err).Errorf("adopt worker %d (pid %d): it is killed", w.slot, w.pid)
			_ = unix.Kill(w.pid, unix.SIGKILL)
			p = &procHandle{pid: w.pid, pidfd: -1}
			proc.Default().Adopt(w.pid, func(e proc.Exit) { exited <- e.Status })
		}
		w.proc = p
		w.bootDeadline = addClock(now, s.cfg.BootTimeout)
		w.watchdog = s.cfg.WatchdogTimeout
		s.recycleLimits(w)
		s.track(w)
		pumped := make(chan struct{})
		if hw.StdoutFD >= 0 {
			for _, p := range []struct {
				fd     int
				stream string
			}{{hw.StdoutFD, "stdout"}, {hw.StderrFD, "stderr"}} {
				_ = setCloexec(p.fd, true)
				f := os.NewFile(uintptr(p.fd), p.stream)
				if p.stream == "stdout" {
					w.outR = f
				} else {
					w.errR = f
				}
			}
			if s.onOutput != nil {
				s.pumpOutput(w, pumped)
			} else {
				_ = w.outR.Close()
				_ = w.errR.Close()
				close(pumped)
			}
		} else {
			close(pumped)
		}
		go func() { s.afterOutput(w, <-exited, pumped) }()
		switch {
		case hw.State.stopping():
			// Its drain goes on; the kill deadline restarts with this baton.
			w.retired = true
			if w.detail == "" {
				w.detail = "stopping before the upgrade"
			}
			s.setState(w, Stopping)
			continue
		case hw.State == Ready:
			s.setState(w, Ready)
			w.readyAt = hw.ReadyAt
			if !hw.LastHeartbeat.IsZero() {
				w.lastHeartbeat = hw.LastHeartbeat
			}
			s.arm(&w.alarm, s.readyDue(w))
		default:
			s.setState(w, Starting)
		}
		if sl := s.adoptSlot(w); sl == nil {
			// More workers than slots (the config shrank): drain the rest.
			s.retire(w, StopScaledDown, "scaled down")
		}
	}
	s.log.WithField("generation", s.gen).Infof("adopted %d workers from the baton this one replaced", len(h.Workers))
}

func (s *Supervisor) adoptSlot(w *worker) *slot {
	if w.retired || w.slot < 1 || w.slot > len(s.slots) {
		return nil
	}
	sl := s.slots[w.slot-1]
	if sl.w != nil {
		return nil
	}
	sl.w, sl.gen = w, w.gen
	return sl
}

// SocketsFromHandoff rebuilds the socket set a handoff passed.
func SocketsFromHandoff(h *Handoff) activation.Set {
	var set activation.Set
	for _, x := range h.Sockets {
		_ = setCloexec(x.FD, true)
		set = append(set, &activation.Socket{Name: x.Name, Addr: x.Addr, Origin: activation.Origin(x.Origin), File: os.NewFile(uintptr(x.FD), x.Name)})
	}
	return set
}
