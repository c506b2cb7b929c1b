package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildBaton builds baton with a version of its own into dir and returns
// its path.
func buildBaton(t *testing.T, dir, version string) string {
	t.Helper()
	out := filepath.Join(dir, "baton-"+version)
	cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", out, "../cmd/baton")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	return out
}

// install replaces path the way a package manager does: a new file renamed
// over the old, never a write into the running binary.
func install(t *testing.T, src, path string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func runningVersion(t *testing.T, control string) (string, int) {
	t.Helper()
	v, pid, err := tryVersion(control)
	if err != nil {
		t.Fatal(err)
	}
	return v, pid
}

// tryVersion asks the running baton for its version. A request that lands
// while baton executes itself is closed with the old image: callers that
// poll treat an error as "not yet".
func tryVersion(control string) (string, int, error) {
	out, err := exec.Command(batonBin, "status", "--json", "--control", control).Output()
	if err != nil {
		return "", 0, err
	}
	var st struct {
		Version string `json:"version"`
		PID     int    `json:"pid"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return "", 0, err
	}
	return st.Version, st.PID, nil
}

// A new binary and systemctl reload: baton executes it in place (same main
// pid), keeps its sockets and workers, rolls the workers, fails no request.
// A binary that cannot run is refused and the old baton goes on.
func TestSelfUpgradeInPlaceUnderLoad(t *testing.T) {
	dir := filepath.Join(workDir, "upgrade")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	v1, v2 := buildBaton(t, dir, "e2e-1"), buildBaton(t, dir, "e2e-2")
	bin := filepath.Join(dir, "baton")
	install(t, v1, bin)
	port := freePort(t)
	cfg := filepath.Join(dir, "app.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("command = [%q]\nworkers = 4\nsurge = 2\n", helloBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newService(t, "upgrade",
		fmt.Sprintf("Type=notify\nNotifyAccess=main\nKillMode=mixed\nRuntimeDirectory=upgrade\nExecStart=%s run -c %s\nExecReload=%s reload --wait\n", bin, cfg, bin),
		fmt.Sprintf("ListenStream=127.0.0.1:%d\nFileDescriptorName=web\n", port))
	s.systemctl("start", s.name+".socket", s.name+".service")
	control := filepath.Join(mgr.RuntimeDir, "upgrade", "control.sock")
	if v, _ := runningVersion(t, control); !strings.HasPrefix(v, "baton e2e-1 ") {
		t.Fatalf("running %q", v)
	}
	mainPID := s.show("MainPID")
	fdsBefore := countFDs(t, mainPID)

	l := startLoad(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 8)
	l.waitServed(200)
	install(t, v2, bin)
	s.systemctl("reload", s.name+".service")
	l.waitServed(200)
	t.Logf("across the upgrade: %s", l.finish().Summary())
	v, pid := runningVersion(t, control)
	if !strings.HasPrefix(v, "baton e2e-2 ") || fmt.Sprint(pid) != mainPID || s.show("MainPID") != mainPID {
		t.Errorf("after upgrade: version %q pid %d, main pid %s (was %s)", v, pid, s.show("MainPID"), mainPID)
	}
	if st := s.show("StatusText"); st != "4/4 workers ready, generation 2" {
		t.Errorf("status %q", st)
	}
	// Nothing leaked across exec: the same sockets, pipes per worker and
	// runtime fds as before.
	s.waitFor("the old workers' pipes to close", 10*time.Second, func() bool { return countFDs(t, mainPID) <= fdsBefore })
	if log := s.readLog(); !strings.Contains(log, "adopted 4 workers from the baton this one replaced") {
		t.Errorf("log:\n%s", log)
	}

	// A binary that cannot run: refused, nothing changes.
	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho 'cannot start' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	install(t, broken, bin)
	// Asked with a client that works (ExecReload= would run the broken
	// binary itself and fail before reaching baton).
	out, err := exec.Command(batonBin, "reload", "--wait", "--control", control).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "upgrade refused, nothing changed: new binary "+bin+" does not run") || !strings.Contains(string(out), "cannot start") {
		t.Errorf("reload with a broken binary: %v\n%s", err, out)
	}
	if v, pid := runningVersion(t, control); !strings.HasPrefix(v, "baton e2e-2 ") || fmt.Sprint(pid) != mainPID {
		t.Errorf("after the broken upgrade: %q %d", v, pid)
	}
	if code, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); code != 200 {
		t.Errorf("status %d", code)
	}
	// SIGUSR2 upgrades too.
	install(t, v1, bin)
	s.systemctl("kill", "--kill-whom=main", "-s", "SIGUSR2", s.name+".service")
	s.waitFor("the SIGUSR2 upgrade", 20*time.Second, func() bool {
		v, pid, err := tryVersion(control)
		return err == nil && strings.HasPrefix(v, "baton e2e-1 ") && fmt.Sprint(pid) == mainPID && s.show("StatusText") == "4/4 workers ready, generation 3"
	})
}
