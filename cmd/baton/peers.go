package main

import (
	"fmt"
	"os"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/procfs"
)

// owner is what workerCheck needs of the containment strategy
// (contain.Strategy): which worker, if any, a process belongs to.
type owner interface {
	Owner(pid int) (id string, ok bool)
}

// workerCheck identifies baton's workers among control socket peers: a
// process the containment strategy attributes to a worker (its cgroup,
// its worker's session, the worker id it inherited) or one that descends
// from baton (baton's only children are workers and, under the
// process-group strategy, what they left behind, re-parented to baton as
// its subreaper).
//
// The pid is the connecting process's at connect(2): a connection handed
// to another process keeps it. A peer whose process is gone or hidden is
// refused: it cannot be told apart from a worker. docs/security.md lists
// what escapes: a worker of baton's uid can move itself to another cgroup
// of the delegated tree.
func workerCheck(cells owner) control.WorkerCheck {
	self := os.Getpid()
	return func(pid int) (bool, error) {
		if pid <= 0 {
			return false, fmt.Errorf("the kernel gave no pid (a peer in another pid namespace?)")
		}
		if pid == self {
			return false, nil
		}
		if cells != nil {
			if _, ok := cells.Owner(pid); ok {
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
