package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The unit files baton ships (baton units), installed as they are but for
// the binary's and the config's paths, run an instance that serves through
// its socket and reloads through ExecReload=.
func TestShippedUnitsServeAndReload(t *testing.T) {
	out, err := exec.Command(batonBin, "units", "-o", t.TempDir()).Output()
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	confDir := filepath.Join(workDir, "etc-baton")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(workDir, "shipped.log")
	os.Remove(log)
	for _, path := range strings.Fields(string(out)) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		unit := strings.ReplaceAll(string(b), "/usr/bin/baton", batonBin)
		unit = strings.ReplaceAll(unit, "/etc/baton", confDir)
		if err := os.WriteFile(filepath.Join(mgr.UnitDir, filepath.Base(path)), []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dropIn := filepath.Join(mgr.UnitDir, "baton@demo.socket.d")
	if err := os.MkdirAll(dropIn, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dropIn, "listen.conf"), []byte(fmt.Sprintf("[Socket]\nListenStream=\nListenStream=127.0.0.1:%d\n", port)), 0o644); err != nil {
		t.Fatal(err)
	}
	svcDropIn := filepath.Join(mgr.UnitDir, "baton@demo.service.d")
	if err := os.MkdirAll(svcDropIn, 0o755); err != nil {
		t.Fatal(err)
	}
	// Six directives cannot work in the sandbox these tests run in, which
	// is not a booted system with a system manager: ProtectKernelTunables=,
	// ProtectKernelLogs= and ProtectHome= (their mounts fail:
	// 226/NAMESPACE); ProtectControlGroups= and ProtectProc= (with this
	// sandbox's cgroup and /proc mounts, exec then fails: 203/EXEC); and
	// DynamicUser= (a user manager cannot hand the runtime directory to a
	// dynamic user: bind: permission denied). Every other directive of the
	// shipped unit stays on: the system call filter, no capabilities,
	// NoNewPrivileges=, ProtectSystem=strict, PrivateDevices=,
	// RestrictAddressFamilies=, RestrictNamespaces=, ... A booted container
	// is where all of them are to be proven.
	if err := os.WriteFile(filepath.Join(svcDropIn, "test.conf"), []byte(fmt.Sprintf("[Service]\nStandardOutput=append:%s\nStandardError=append:%s\nProtectKernelTunables=no\nProtectKernelLogs=no\nProtectHome=no\nProtectControlGroups=no\nProtectProc=default\nDynamicUser=no\n", log, log)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "demo.toml"), []byte(fmt.Sprintf("command = [%q]\nworkers = 2\n", helloBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The documented example for a second named socket (units/examples),
	// listening on TCP here.
	admin := freePort(t)
	for src, dst := range map[string]string{
		"../units/examples/baton-admin@.socket":                "baton-admin@.socket",
		"../units/examples/baton@.service.d/admin-socket.conf": "baton@demo.service.d/admin-socket.conf",
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mgr.UnitDir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	adminDropIn := filepath.Join(mgr.UnitDir, "baton-admin@demo.socket.d")
	if err := os.MkdirAll(adminDropIn, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(adminDropIn, "listen.conf"), []byte(fmt.Sprintf("[Socket]\nListenStream=\nListenStream=127.0.0.1:%d\n", admin)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.Systemctl(ctx(t), "daemon-reload"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer func() {
			_, _ = mgr.Systemctl(ctx(t), "stop", "baton@demo.service", "baton@demo.socket", "baton-admin@demo.socket")
		}()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			st, _ := mgr.Systemctl(ctx(t), "status", "baton@demo.service")
			ml := mgr.Log()
			if len(ml) > 3000 {
				ml = ml[len(ml)-3000:]
			}
			t.Logf("log:\n%s\nstatus:\n%s\nmanager:\n%s", b, st, ml)
		}
	})
	if _, err := mgr.Systemctl(ctx(t), "start", "baton@demo.socket"); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if code, body := get(t, url); code != 200 || !strings.Contains(body, "generation 1") {
		t.Fatalf("%d %q", code, body)
	}
	// A worker answers before baton has told systemd READY=1; a reload
	// while the start job still runs is merged into it by systemd and never
	// reaches baton. Wait for the unit to be active.
	activeBy := time.Now().Add(20 * time.Second)
	for {
		st, _ := mgr.Show(ctx(t), "baton@demo.service", "ActiveState")
		if st == "active" {
			break
		}
		if time.Now().After(activeBy) {
			t.Fatalf("baton@demo.service is %s", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := mgr.Systemctl(ctx(t), "reload", "baton@demo.service"); err != nil {
		t.Fatal(err)
	}
	// An old worker told to stop a moment ago may still answer one
	// request; the new generation answers from then on.
	var body string
	until := time.Now().Add(10 * time.Second)
	for !strings.Contains(body, "generation 2") && time.Now().Before(until) {
		var code int
		if code, body = get(t, url); code != 200 {
			t.Fatalf("after reload: %d %q", code, body)
		}
	}
	if !strings.Contains(body, "generation 2") {
		t.Fatalf("after reload: %q", body)
	}
	if st, _ := mgr.Show(ctx(t), "baton@demo.service", "StatusText"); st != "2/2 workers ready, generation 2" {
		t.Errorf("status %q", st)
	}
	// The second named socket reaches the workers too.
	if code, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/", admin)); code != 200 {
		t.Errorf("admin socket: %d", code)
	}
	pid, _ := mgr.MainPID(ctx(t), "baton@demo.service")
	// An operator's shell finds the instance by its name, with no flag.
	for _, name := range []string{"demo", "baton@demo"} {
		if got := statusPID(t, name); got != pid {
			t.Errorf("baton status %s: pid %d, want %d", name, got, pid)
		}
	}
	if procs, _ := mgr.UnitProcs(ctx(t), "baton@demo.service"); len(procs) > 1 {
		for _, p := range procs {
			if p == pid {
				continue
			}
			env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p))
			if !strings.Contains(string(env), "LISTEN_FDNAMES=web:admin\x00") && !strings.Contains(string(env), "LISTEN_FDNAMES=admin:web\x00") {
				t.Errorf("worker %d environment lacks both names: %q", p, env)
			}
			break
		}
	}
	if _, err := mgr.Systemctl(ctx(t), "stop", "baton@demo.service"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if procs, _ := mgr.UnitProcs(ctx(t), "baton@demo.service"); len(procs) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Error("processes left after stop")
}
