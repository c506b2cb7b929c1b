package procfs

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParentAndAlive(t *testing.T) {
	if got := Parent(os.Getpid()); got != os.Getppid() {
		t.Errorf("Parent(self) = %d, want %d", got, os.Getppid())
	}
	if rss, err := RSS(os.Getpid()); err != nil || rss < 1<<20 {
		t.Errorf("RSS(self) = %d, %v", rss, err)
	}
	if c := Comm(os.Getpid()); c == "" || len(c) > 15 {
		t.Errorf("Comm(self) = %q", c)
	}
	if !Alive(os.Getpid()) {
		t.Error("self not alive")
	}
	// btime has a resolution of a second, start times of a clock tick.
	if st := Started(os.Getpid()); st.IsZero() || st.After(time.Now().Add(time.Second)) || time.Since(st) > time.Hour {
		t.Errorf("Started(self) = %v", st)
	}
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if Alive(cmd.Process.Pid) || Parent(cmd.Process.Pid) != -1 || !Started(cmd.Process.Pid).IsZero() {
		t.Errorf("reaped pid %d still seen", cmd.Process.Pid)
	}
}

func TestUnitOf(t *testing.T) {
	for _, c := range []struct{ cgroups, want string }{
		{"0::/system.slice/baton@myapp.service\n", "baton@myapp.service"},
		{"0::/user.slice/user-1000.slice/user@1000.service/app.slice/web.service/supervisor\n", "web.service"},
		{"12:memory:/\n1:name=systemd:/system.slice/app.service\n0::/\n", "app.service"},
		{"0::/user.slice/user-0.slice/session-3.scope\n", ""},
		{"0::/\n", ""},
		{"", ""},
	} {
		if got := unitOf(c.cgroups); got != c.want {
			t.Errorf("unitOf(%q) = %q, want %q", c.cgroups, got, c.want)
		}
	}
}
