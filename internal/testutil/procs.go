package testutil

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
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
func PPID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// The command name may contain spaces and parentheses: fields start after
	// the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return -1
	}
	pp, _ := strconv.Atoi(f[1])
	return pp
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] != 'Z'
}

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
