package e2e

import (
	"context"
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

// kill -9 of baton under the shipped unit's ExitType=cgroup: the workers
// get SIGTERM instead of dying with it, finish the requests they hold, and
// systemd restarts baton once they are gone, with the socket kept in the
// fd store meanwhile. A client that never retries sees no failure, with
// keep-alive off and on, and after an upgrade in place.
func TestKilledBatonsWorkersFinishTheirRequests(t *testing.T) {
	port := freePort(t)
	cfgPath := filepath.Join(workDir, "crash.toml")
	cfg := fmt.Sprintf("command = [%q]\nworkers = 4\n\n[sockets.web]\nlisten = \"tcp://127.0.0.1:%d\"\n", helloBin, port)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newService(t, "crash",
		fmt.Sprintf("Type=notify\nNotifyAccess=main\nKillMode=mixed\nExitType=cgroup\nWatchdogSec=30s\nDelegate=yes\nFileDescriptorStoreMax=4\nRestart=on-failure\nRestartSec=100ms\nTimeoutStopSec=45\nRuntimeDirectory=crash\nExecStart=%s run -c %s\nExecReload=%s reload --wait\n", batonBin, cfgPath, batonBin), "")
	s.systemctl("start", s.name+".service")
	ready := func() bool { return s.show("StatusText") == "4/4 workers ready, generation 1" }
	s.waitFor("4 workers ready", 30*time.Second, ready)
	if log := s.readLog(); !strings.Contains(log, "ExitType=cgroup: should baton die, its workers get SIGTERM") {
		t.Errorf("baton did not choose SIGTERM for its orphans:\n%s", log)
	}

	killUnderLoad := func(t *testing.T, keepAlive bool) {
		// 300 ms requests, 8 clients on 4 workers: every worker holds
		// requests when baton dies.
		l, err := load.Start(context.Background(), load.Options{
			URL: fmt.Sprintf("http://127.0.0.1:%d/sleep?ms=300", port), Clients: 8, KeepAlive: keepAlive, Timeout: 30 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Stop()
		run := &loadRun{Load: l, t: t}
		run.waitServed(40)
		pid, _ := strconv.Atoi(s.show("MainPID"))
		workers := procsOf(t, s)
		killed := killBaton(t, s, ready)
		for _, w := range workers {
			if w != pid && syscall.Kill(w, 0) == nil {
				t.Errorf("process %d of the killed baton's cgroup still runs beside the new baton", w)
			}
		}
		run.waitServed(40)
		finishedAcrossKill(t, run, killed)
	}
	for _, keepAlive := range []bool{false, true} {
		t.Run(fmt.Sprintf("keepalive=%v", keepAlive), func(t *testing.T) { killUnderLoad(t, keepAlive) })
	}
	// The workers an upgraded baton forks get the same signal: the image
	// executed in place cannot ask systemd again, the old one tells it.
	t.Run("after an upgrade in place", func(t *testing.T) {
		mainPID := s.show("MainPID")
		s.systemctl("kill", "--kill-whom=main", "-s", "SIGUSR2", s.name+".service")
		s.waitFor("the upgrade to roll the workers", 30*time.Second, func() bool {
			return s.show("MainPID") == mainPID && s.show("StatusText") == "4/4 workers ready, generation 2"
		})
		killUnderLoad(t, true)
	})
	if r := s.show("NRestarts"); r != "3" {
		t.Errorf("NRestarts=%s, want 3", r)
	}
}

// killBaton sends the service's baton SIGKILL and waits until systemd has
// started another and ready holds; it returns when it sent the signal.
func killBaton(t *testing.T, s *service, ready func() bool) time.Time {
	t.Helper()
	old := s.show("MainPID")
	pid, err := strconv.Atoi(old)
	if err != nil || pid <= 0 {
		t.Fatalf("MainPID=%q", old)
	}
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.waitFor("a new baton, ready", 60*time.Second, func() bool {
		p := s.show("MainPID")
		return p != old && p != "0" && ready()
	})
	return killed
}

// procsOf lists the pids in the service's cgroup.
func procsOf(t *testing.T, s *service) []int {
	t.Helper()
	pids, err := mgr.UnitProcs(ctx(t), s.name+".service")
	if err != nil {
		t.Fatal(err)
	}
	return pids
}
