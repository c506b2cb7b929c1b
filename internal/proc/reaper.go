package proc

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Exit is one reaped child.
type Exit struct {
	PID    int
	Status unix.WaitStatus
	Rusage unix.Rusage
}

// Reaper waits for this process's children. There is one per process
// (Default); its waiter goroutine starts with the first child.
type Reaper struct {
	mu       sync.Mutex
	owned    map[int]func(Exit)
	reapAll  bool
	onOrphan func(Exit)
	kick     chan struct{}
	start    sync.Once
	orphans  int
	// unclaimed are the last exits of children nobody had registered, in
	// ReapAll mode: a worker handed over by an upgrade may die before the
	// new image adopts it, and Adopt must still hear of it.
	unclaimed     map[int]Exit
	unclaimedRing []int
}

// unclaimedMax bounds the exits kept for a late Adopt.
const unclaimedMax = 4096

var std = &Reaper{owned: map[int]func(Exit){}, kick: make(chan struct{}, 1), unclaimed: map[int]Exit{}}

// Default is the process's reaper.
func Default() *Reaper { return std }

// ReapAll makes the reaper reap every child, also those it did not start
// (orphans re-parented to this process as PID 1 or as a child subreaper),
// and report those to onOrphan (which may be nil). Nothing else in the
// process may then wait for children it started itself: use Start or Run.
func (r *Reaper) ReapAll(onOrphan func(Exit)) {
	r.mu.Lock()
	r.reapAll, r.onOrphan = true, onOrphan
	r.mu.Unlock()
	r.poke()
}

// Orphans is how many children the reaper reaped that it did not start.
func (r *Reaper) Orphans() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.orphans
}

func (r *Reaper) poke() {
	r.start.Do(func() { go r.loop() })
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Start forks and executes argv0 on the fork thread and registers the child
// before the reaper can see it exit; onExit is called from the reaper's
// goroutine once the child was reaped, and must not block for long. pidfd
// is the child's pidfd(2) (-1 when the kernel has none); the caller owns it.
func (r *Reaper) Start(argv0 string, argv []string, attr *syscall.ProcAttr, onExit func(Exit)) (pid, pidfd int, err error) {
	if attr.Sys == nil {
		attr.Sys = &syscall.SysProcAttr{}
	}
	pidfd = -1
	attr.Sys.PidFD = &pidfd
	Do(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		pid, err = syscall.ForkExec(argv0, argv, attr)
		if err == nil {
			r.owned[pid] = onExit
		}
	})
	if err != nil {
		return 0, -1, err
	}
	r.poke()
	return pid, pidfd, nil
}

// Adopt registers a child this process did not fork in this image: a
// worker of the baton that executed this one in place.
//
// If the child was already reaped as unknown (ReapAll was on before the
// adoption), onExit is called at once with its exit.
func (r *Reaper) Adopt(pid int, onExit func(Exit)) {
	r.mu.Lock()
	e, gone := r.unclaimed[pid]
	if gone {
		delete(r.unclaimed, pid)
		r.orphans--
	} else {
		r.owned[pid] = onExit
	}
	r.mu.Unlock()
	if gone {
		go onExit(e)
		return
	}
	r.poke()
}

// Forget drops a registration (the exit will be reaped and ignored in
// ReapAll mode, or left to others otherwise).
func (r *Reaper) Forget(pid int) {
	r.mu.Lock()
	delete(r.owned, pid)
	r.mu.Unlock()
}

// remember keeps an unknown child's exit for a late Adopt; r.mu is held.
func (r *Reaper) remember(e Exit) {
	if len(r.unclaimedRing) >= unclaimedMax {
		delete(r.unclaimed, r.unclaimedRing[0])
		r.unclaimedRing = r.unclaimedRing[1:]
	}
	r.unclaimed[e.PID] = e
	r.unclaimedRing = append(r.unclaimedRing, e.PID)
}

// idleWait is how long the reaper sleeps when it has no children at all:
// an orphan can be re-parented to this process at any time without a
// wake-up it could wait for.
const idleWait = time.Second

// foreignWait is how long it leaves a zombie it does not own to its owner.
const foreignWait = 5 * time.Millisecond

func (r *Reaper) loop() {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOWAIT, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			r.idle()
			continue
		case err != nil:
			// Not expected from waitid; back off rather than spin.
			fmt.Fprintf(os.Stderr, "baton: reaper: waitid: %v\n", err)
			time.Sleep(idleWait)
			continue
		}
		pid := int(siginfoPID(&info))
		r.mu.Lock()
		onExit, ours := r.owned[pid]
		reapAll, onOrphan := r.reapAll, r.onOrphan
		if ours {
			delete(r.owned, pid)
		}
		r.mu.Unlock()
		switch {
		case ours:
			if e, ok := reap(pid); ok {
				onExit(e)
			}
		case reapAll:
			if e, ok := reap(pid); ok {
				r.mu.Lock()
				r.orphans++
				r.remember(e)
				r.mu.Unlock()
				if onOrphan != nil {
					onOrphan(e)
				}
			}
		default:
			// Someone else's child: theirs to reap. Ours may be queued
			// behind it, so look for them one by one.
			r.reapOwned()
			time.Sleep(foreignWait)
		}
	}
}

func (r *Reaper) idle() {
	t := time.NewTimer(idleWait)
	defer t.Stop()
	select {
	case <-r.kick:
	case <-t.C:
	}
}

// reapOwned reaps every registered child that has exited.
func (r *Reaper) reapOwned() {
	r.mu.Lock()
	pids := make([]int, 0, len(r.owned))
	for pid := range r.owned {
		pids = append(pids, pid)
	}
	r.mu.Unlock()
	for _, pid := range pids {
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err != nil || siginfoPID(&info) == 0 {
			continue
		}
		r.mu.Lock()
		onExit, ok := r.owned[pid]
		delete(r.owned, pid)
		r.mu.Unlock()
		if !ok {
			continue
		}
		if e, ok := reap(pid); ok {
			onExit(e)
		}
	}
}

// reap collects pid's status; it is a zombie, so this does not block.
func reap(pid int) (Exit, bool) {
	e := Exit{PID: pid}
	for {
		got, err := unix.Wait4(pid, &e.Status, unix.WNOHANG, &e.Rusage)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil || got != pid:
			return e, false
		}
		return e, true
	}
}
