package procfs

import (
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestStatChildrenGetenv(t *testing.T) {
	st, err := ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	sid, _ := unix.Getsid(0)
	if st.PPID != os.Getppid() || st.PGID != syscall.Getpgrp() || st.SID != sid || st.Start == 0 || st.Zombie() {
		t.Errorf("ReadStat(self) = %+v", st)
	}
	cmd := exec.Command("/bin/sleep", "60")
	cmd.Env = []string{"A=1", "BATON_X=two=2"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	kids, err := Children(os.Getpid())
	if err != nil || !slices.Contains(kids, cmd.Process.Pid) {
		t.Errorf("Children(self) = %v, %v; want %d among them", kids, err, cmd.Process.Pid)
	}
	if cst, err := ReadStat(cmd.Process.Pid); err != nil || cst.SID != cmd.Process.Pid || cst.Start < st.Start {
		t.Errorf("ReadStat(child) = %+v, %v", cst, err)
	}
	if v, ok := Getenv(cmd.Process.Pid, "BATON_X"); !ok || v != "two=2" {
		t.Errorf("Getenv = %q, %v", v, ok)
	}
	if _, ok := Getenv(cmd.Process.Pid, "BATON"); ok {
		t.Error("Getenv matched a prefix")
	}
	if _, err := ReadStat(1 << 30); err == nil {
		t.Error("ReadStat of no process")
	}
}

// BenchmarkChildren reads the children of a process with 1,000 of them, the
// supervisor's design point: baton scans its own children on every worker
// exit without a delegated cgroup.
func BenchmarkChildren(b *testing.B) {
	const n = 1000
	var cmds []*exec.Cmd
	b.Cleanup(func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	})
	for range n {
		c := exec.Command("/bin/sleep", "600")
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	b.ResetTimer()
	for range b.N {
		kids, err := Children(os.Getpid())
		if err != nil || len(kids) < n {
			b.Fatalf("Children = %d, %v", len(kids), err)
		}
	}
}
