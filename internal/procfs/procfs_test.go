package procfs

import (
	"os"
	"os/exec"
	"testing"
)

func TestParentAndAlive(t *testing.T) {
	if got := Parent(os.Getpid()); got != os.Getppid() {
		t.Errorf("Parent(self) = %d, want %d", got, os.Getppid())
	}
	if rss, err := RSS(os.Getpid()); err != nil || rss < 1<<20 {
		t.Errorf("RSS(self) = %d, %v", rss, err)
	}
	if !Alive(os.Getpid()) {
		t.Error("self not alive")
	}
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if Alive(cmd.Process.Pid) || Parent(cmd.Process.Pid) != -1 {
		t.Errorf("reaped pid %d still seen", cmd.Process.Pid)
	}
}
