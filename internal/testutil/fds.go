package testutil

import (
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// OpenFDs lists the process's open fds with their targets.
func OpenFDs(t testing.TB) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("list fds: %v", err)
	}
	fds := map[string]string{}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory fd ReadDir itself used
		}
		fds[e.Name()] = target
	}
	return fds
}

// CheckFDLeaks records the open fds now and, at cleanup, fails the test if
// any fd opened since is still open. Closing is sometimes asynchronous (a
// goroutine finishing), so it waits up to five seconds for them to go.
func CheckFDLeaks(t testing.TB) {
	t.Helper()
	before := OpenFDs(t)
	t.Cleanup(func() {
		var leaked []string
		deadline := time.Now().Add(5 * time.Second)
		for {
			leaked = leaked[:0]
			for fd, target := range OpenFDs(t) {
				if _, ok := before[fd]; !ok && !strings.HasPrefix(target, "anon_inode:[eventpoll]") && !strings.HasPrefix(target, "anon_inode:[eventfd]") && !strings.HasPrefix(target, "anon_inode:[pidfd]") {
					leaked = append(leaked, fd+" -> "+target)
				}
			}
			if len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(leaked) > 0 {
			sort.Strings(leaked)
			t.Errorf("leaked fds: %s", strings.Join(leaked, ", "))
		}
	})
}
