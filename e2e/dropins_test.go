package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The documented drop-in that opens the shipped socket to a reverse
// proxy's group (units/examples/baton@.socket.d/proxy-group.conf) makes
// systemd create the socket with that group and mode 0660.
func TestProxyGroupDropInOpensTheSocketToTheGroup(t *testing.T) {
	group, err := user.LookupGroup("www-data")
	if err != nil {
		t.Fatalf("the example names www-data, Debian's web server group: %v", err)
	}
	dir := t.TempDir()
	if _, err := exec.Command(batonBin, "units", "-o", dir).Output(); err != nil {
		t.Fatal(err)
	}
	// The socket unit needs its service unit to exist, not to run.
	for _, name := range []string{"baton@.socket", "baton@.service"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(mgr.UnitDir, name)
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(b), "/usr/bin/baton", batonBin)), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(path) })
	}
	sock := filepath.Join(workDir, "proxy.sock")
	dropIns := filepath.Join(mgr.UnitDir, "baton@proxy.socket.d")
	if err := os.MkdirAll(dropIns, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dropIns) })
	example, err := os.ReadFile("../units/examples/baton@.socket.d/proxy-group.conf")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"listen.conf":      fmt.Sprintf("[Socket]\nListenStream=\nListenStream=%s\n", sock),
		"proxy-group.conf": string(example),
	} {
		if err := os.WriteFile(filepath.Join(dropIns, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := mgr.Systemctl(ctx(t), "daemon-reload"); err != nil {
		t.Fatal(err)
	}
	if out, err := mgr.Systemctl(ctx(t), "start", "baton@proxy.socket"); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = mgr.Systemctl(ctx(t), "stop", "baton@proxy.socket") })
	st, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	gid := strconv.Itoa(int(st.Sys().(*syscall.Stat_t).Gid))
	if gid != group.Gid || st.Mode().Perm() != 0o660 || st.Mode()&os.ModeSocket == 0 {
		t.Errorf("%s: mode %v, gid %s; want a socket, 0660, gid %s (www-data)", sock, st.Mode(), gid, group.Gid)
	}
}
