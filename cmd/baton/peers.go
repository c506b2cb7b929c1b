package main

import (
	"fmt"
	"os"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/procfs"
	"golang.org/x/sys/unix"
)

// workerCheck identifies baton's workers among control socket peers: a
// process that descends from baton (baton's only children are workers) or,
// when baton leads its own session (as every systemd service does), one in
// that session, which also catches a worker's orphaned children that were
// re-parented away from baton.
//
// Its limits: a worker's descendant that both left the session (setsid)
// and was re-parented away from baton is not recognised; per-worker
// cgroups will close that. The pid is the connecting process's at
// connect(2); a connection handed to another process keeps it. A peer
// whose process is gone or hidden is refused: it cannot be told apart.
func workerCheck() control.WorkerCheck {
	self := os.Getpid()
	sid, err := unix.Getsid(0)
	leader := err == nil && sid == self
	return func(pid int) (bool, error) {
		if pid <= 0 {
			return false, fmt.Errorf("the kernel gave no pid (a peer in another pid namespace?)")
		}
		if pid == self {
			return false, nil
		}
		if leader {
			s := procfs.Session(pid)
			if s < 0 {
				return false, fmt.Errorf("pid %d is gone or hidden", pid)
			}
			if s == self {
				return true, nil
			}
		}
		return descendant(pid, self)
	}
}

// descendant walks pid's ancestry up to ancestor or to the top. An
// ancestor that exits during the walk re-parents its children, so a broken
// walk starts over, a few times.
func descendant(pid, ancestor int) (bool, error) {
	for try := 0; try < 3; try++ {
		p, broken := pid, false
		for n := 0; n < 1<<16 && p > 1; n++ {
			pp := procfs.Parent(p)
			if pp < 0 {
				if p == pid {
					return false, fmt.Errorf("pid %d is gone or hidden", pid)
				}
				broken = true
				break
			}
			if pp == ancestor {
				return true, nil
			}
			p = pp
		}
		if !broken {
			return false, nil
		}
	}
	return false, fmt.Errorf("pid %d: its ancestry kept changing", pid)
}
