package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/bench/load"
)

// baton binds its own socket (no .socket unit) and keeps it in systemd's fd
// store: restarts and crashes refuse no connection.
func TestFDStoreKeepsSelfBoundSocketsAcrossRestartsAndCrashes(t *testing.T) {
	port, extra := freePort(t), freePort(t)
	cfgPath := filepath.Join(workDir, "fdstore.toml")
	base := fmt.Sprintf("command = [%q]\nworkers = 4\ngraceful-timeout = \"10s\"\n\n[sockets.web]\nlisten = \"tcp://127.0.0.1:%d\"\n", helloBin, port)
	write := func(body string) {
		if err := os.WriteFile(cfgPath, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(base)
	s := newService(t, "fdstore",
		fmt.Sprintf("Type=notify\nNotifyAccess=main\nKillMode=mixed\nFileDescriptorStoreMax=4\nRestart=on-failure\nRestartSec=100ms\nTimeoutStopSec=45\nRuntimeDirectory=fdstore\nExecStart=%s run -c %s\nExecReload=%s reload --wait\n", batonBin, cfgPath, batonBin), "")
	s.systemctl("start", s.name+".service")
	if n := s.show("NFileDescriptorStore"); n != "1" {
		t.Fatalf("NFileDescriptorStore=%s after start\n%s", n, s.readLog())
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)

	l := startLoad(t, url, 8)
	pids := map[string]bool{s.show("MainPID"): true}
	for i := 0; i < 3; i++ {
		l.waitServed(200)
		s.systemctl("restart", s.name+".service")
		pids[s.show("MainPID")] = true
	}
	l.waitServed(200)
	t.Logf("across 3 restarts: %s", l.finish().Summary())
	if len(pids) != 4 {
		t.Errorf("main pids %v: want a new baton per restart", pids)
	}
	if log := s.readLog(); !strings.Contains(log, fmt.Sprintf("socket web on tcp://127.0.0.1:%d (inherited)", port)) {
		t.Errorf("the restarted baton did not take web from the store:\n%s", log)
	}

	// kill -9: requests in flight on the killed workers may fail; no
	// connection is refused.
	l = startLoad(t, url, 8)
	l.waitServed(200)
	old := s.show("MainPID")
	pid, _ := strconv.Atoi(old)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.waitFor("a new baton", 30*time.Second, func() bool {
		p := s.show("MainPID")
		return p != old && p != "0" && s.show("ActiveState") == "active"
	})
	l.served(200)
	res := l.Stop()
	sum := res.Summary()
	t.Logf("kill -9: %s", sum)
	if n := sum.ByKind[load.Refused]; n > 0 {
		t.Errorf("%d connections refused around kill -9:\n%s", n, failures(res, 20))
	}
	if n := s.show("NFileDescriptorStore"); n != "1" {
		t.Errorf("NFileDescriptorStore=%s after the crash", n)
	}

	// A socket added to the config joins the store; removed, it leaves it.
	write(base + fmt.Sprintf("\n[sockets.extra]\nlisten = \"tcp://127.0.0.1:%d\"\n", extra))
	s.systemctl("reload", s.name+".service")
	if n := s.show("NFileDescriptorStore"); n != "2" {
		t.Errorf("NFileDescriptorStore=%s after adding a socket", n)
	}
	write(base)
	s.systemctl("reload", s.name+".service")
	s.waitFor("extra to leave the store", 20*time.Second, func() bool { return s.show("NFileDescriptorStore") == "1" })

	// A socket stored and then dropped from the config while baton was
	// down comes back at start, and is closed and dropped from the store.
	write(base + fmt.Sprintf("\n[sockets.extra]\nlisten = \"tcp://127.0.0.1:%d\"\n", extra))
	s.systemctl("reload", s.name+".service")
	if n := s.show("NFileDescriptorStore"); n != "2" {
		t.Fatalf("NFileDescriptorStore=%s", n)
	}
	write(base)
	// This test has started the unit five times in a few seconds: clear
	// systemd's start rate limit (StartLimitBurst=) first.
	s.systemctl("reset-failed", s.name+".service")
	s.systemctl("restart", s.name+".service")
	s.waitFor("the stale entry to leave the store", 20*time.Second, func() bool { return s.show("NFileDescriptorStore") == "1" })
	if log := s.readLog(); !strings.Contains(log, "socket extra (tcp://127.0.0.1:") || !strings.Contains(log, "came back from the fd store but the config no longer names it") {
		t.Errorf("log:\n%s", log)
	}
	if code, _ := get(t, url); code != 200 {
		t.Errorf("web after the restart: %d", code)
	}
}

// Sockets from a .socket unit and sockets baton binds itself work side by
// side: only the latter go to the store, and both survive a restart.
func TestSocketUnitAndStoredSocketsTogether(t *testing.T) {
	web, admin := freePort(t), freePort(t)
	cfgPath := filepath.Join(workDir, "mixed.toml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("command = [%q]\nworkers = 2\n\n[sockets.admin]\nlisten = \"tcp://127.0.0.1:%d\"\n", helloBin, admin)), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newService(t, "mixed",
		fmt.Sprintf("Type=notify\nNotifyAccess=main\nKillMode=mixed\nFileDescriptorStoreMax=4\nExecStart=%s run -c %s\n", batonBin, cfgPath),
		fmt.Sprintf("ListenStream=127.0.0.1:%d\nFileDescriptorName=web\n", web))
	s.systemctl("start", s.name+".socket", s.name+".service")
	check := func() {
		for _, p := range []int{web, admin} {
			if code, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/", p)); code != 200 {
				t.Errorf("port %d: %d", p, code)
			}
		}
		if n := s.show("NFileDescriptorStore"); n != "1" {
			t.Errorf("NFileDescriptorStore=%s: only admin belongs in the store", n)
		}
	}
	check()
	s.systemctl("restart", s.name+".service")
	check()
	if log := s.readLog(); strings.Contains(log, "no longer names it") {
		t.Errorf("a socket unit's socket was taken for a stale store entry:\n%s", log)
	}
}
