package testutil

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/procfs"
)

// Children lists the pids whose parent is pid.
func Children(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if PPID(p) == pid {
			kids = append(kids, p)
		}
	}
	return kids
}

// PPID returns pid's parent, or -1 when pid is gone.
func PPID(pid int) int { return procfs.Parent(pid) }

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool { return procfs.Alive(pid) }

// CheckChildLeaks fails the test at cleanup if this process still has child
// processes that it did not have at the start.
func CheckChildLeaks(t testing.TB) {
	t.Helper()
	before := map[int]bool{}
	for _, p := range Children(os.Getpid()) {
		before[p] = true
	}
	t.Cleanup(func() {
		var left []int
		Eventually(t, 5*time.Second, func() bool {
			left = left[:0]
			for _, p := range Children(os.Getpid()) {
				if !before[p] && Alive(p) {
					left = append(left, p)
				}
			}
			return len(left) == 0
		})
		if len(left) > 0 {
			t.Errorf("leaked child processes: %v", left)
		}
	})
}

// Eventually polls cond until it holds or the deadline passes, and reports
// whether it held. Tests that wait use it instead of a bare sleep.
func Eventually(t testing.TB, within time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
