package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestDescendant(t *testing.T) {
	// A grandchild: sh runs sleep as its child and waits.
	cmd := exec.Command("/bin/sh", "-c", "/bin/sleep 30 & echo $!; wait")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	buf := make([]byte, 32)
	n, err := stdout.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	grandchild, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(grandchild, syscall.SIGKILL) }()
	for pid, want := range map[int]bool{cmd.Process.Pid: true, grandchild: true, os.Getppid(): false, 1: false} {
		got, err := descendant(pid, os.Getpid())
		if err != nil || got != want {
			t.Errorf("descendant(%d) = %v, %v; want %v", pid, got, err, want)
		}
	}
	if _, err := descendant(1<<30, os.Getpid()); err == nil || !strings.Contains(err.Error(), "gone or hidden") {
		t.Errorf("a pid that does not exist: %v", err)
	}
	check := workerCheck(nil)
	if w, err := check(os.Getpid()); err != nil || w {
		t.Errorf("baton itself: %v %v", w, err)
	}
	if _, err := check(0); err == nil {
		t.Error("pid 0 was not refused")
	}
	if w, err := check(grandchild); err != nil || !w {
		t.Errorf("a grandchild: %v %v", w, err)
	}
}

type fakeOwner map[int]string

func (f fakeOwner) Owner(pid int) (string, bool) {
	id, ok := f[pid]
	return id, ok
}

// A process the containment strategy attributes to a worker (its cgroup,
// say) is a worker, wherever it is in the process tree.
func TestWorkerCheckAsksTheContainment(t *testing.T) {
	check := workerCheck(fakeOwner{os.Getppid(): "1.1.1"})
	if w, err := check(os.Getppid()); err != nil || !w {
		t.Errorf("a process in a worker's cell: %v %v", w, err)
	}
	if w, err := check(1); err != nil || w {
		t.Errorf("init: %v %v", w, err)
	}
}
