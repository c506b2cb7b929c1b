package unitcheck

import (
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/sdbus"
)

func TestStopBudget(t *testing.T) {
	c := &config.Config{Command: []string{"app"}, GracefulTimeout: 30 * time.Second, TimeoutGrace: 5 * time.Second}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	short := StopBudget(c, &sdbus.Service{Unit: "app.service", TimeoutStop: 20 * time.Second})
	if len(short) != 1 || !strings.Contains(short[0].String(), "TimeoutStopSec=20s of app.service is shorter than graceful-timeout 30s plus timeout-grace 5s") || short[0].Fix != "TimeoutStopSec=40s" {
		t.Errorf("short budget: %v", short)
	}
	for _, ok := range []time.Duration{40 * time.Second, 90 * time.Second, sdbus.Infinity} {
		if f := StopBudget(c, &sdbus.Service{Unit: "app.service", TimeoutStop: ok}); len(f) != 0 {
			t.Errorf("TimeoutStop %s: %v", ok, f)
		}
	}
	c.GracefulTimeout = config.Infinity
	if f := StopBudget(c, &sdbus.Service{Unit: "app.service", TimeoutStop: time.Minute}); len(f) != 1 || f[0].Fix != "TimeoutStopSec=infinity" {
		t.Errorf("infinite drain: %v", f)
	}
}

func TestCheck(t *testing.T) {
	web, _ := config.ParseAddress("127.0.0.1:8080")
	admin, _ := config.ParseAddress("unix:///run/admin.sock")
	c := &config.Config{Command: []string{"app"}, Sockets: []config.Socket{{Name: "web", Address: web}, {Name: "admin", Address: admin}}}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	good := &sdbus.Service{Unit: "app.service", Type: "notify", NotifyAccess: "main", KillMode: "mixed", TimeoutStop: time.Minute, Watchdog: 30 * time.Second, ExecReload: true, FileDescriptorStoreMax: 16, Delegate: true, ExitType: "cgroup"}
	if f := Check(c, good); len(f) != 0 {
		t.Errorf("good unit: %v", f)
	}
	// A systemd before 250 has no ExitType=: nothing to say.
	old := *good
	old.ExitType = ""
	if f := Check(c, &old); len(f) != 0 {
		t.Errorf("unit on systemd < 250: %v", f)
	}
	bad := &sdbus.Service{Unit: "app.service", Type: "simple", NotifyAccess: "all", KillMode: "control-group", TimeoutStop: 10 * time.Second, SocketNames: []string{"web"}, ExitType: "main"}
	var got []string
	for _, f := range Check(c, bad) {
		got = append(got, string(f.Severity)+": "+f.Fix)
	}
	want := []string{
		"error: TimeoutStopSec=40s", "error: Type=notify", "warning: NotifyAccess=main", "error: KillMode=mixed",
		"warning: Delegate=yes", "warning: WatchdogSec=30s", "warning: ExitType=cgroup", "warning: ExecReload=/usr/bin/baton reload --wait", "error: FileDescriptorStoreMax=16",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// web comes from the .socket unit: only admin needs the store.
	for _, f := range Check(c, bad) {
		if f.Fix == "FileDescriptorStoreMax=16" && !strings.Contains(f.Problem, "baton binds admin itself") {
			t.Errorf("fd store finding: %s", f.Problem)
		}
	}
}

// Under ExitType=cgroup, a unit without a watchdog is told that a worker
// ignoring SIGTERM would hold a dead baton's unit up.
func TestExitTypeCgroupWantsAWatchdog(t *testing.T) {
	c := &config.Config{Command: []string{"app"}}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	s := &sdbus.Service{Unit: "app.service", Type: "notify", NotifyAccess: "main", KillMode: "mixed", TimeoutStop: time.Minute, ExecReload: true, Delegate: true, ExitType: "cgroup"}
	f := Check(c, s)
	if len(f) != 1 || f[0].Fix != "WatchdogSec=30s" || !strings.Contains(f[0].Problem, "a worker that ignores SIGTERM after baton died keeps the service from restarting") {
		t.Errorf("findings: %v", f)
	}
}

func TestContainment(t *testing.T) {
	c := &config.Config{Command: []string{"app"}}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	unit := func(delegate, protect bool) *sdbus.Service {
		return &sdbus.Service{Unit: "app.service", Type: "notify", NotifyAccess: "main", KillMode: "mixed", TimeoutStop: time.Minute, Watchdog: time.Minute, ExecReload: true, Delegate: delegate, ProtectControlGroups: protect}
	}
	limited := *c
	limited.MemoryMax, limited.CPUWeight = 1<<30, 200
	for _, tc := range []struct {
		name string
		c    *config.Config
		s    *sdbus.Service
		want string
	}{
		{"delegated", c, unit(true, false), ""},
		{"no delegate", c, unit(false, false), "warning: no Delegate=: workers' descendants are contained by process groups only: one that leaves its worker's session can outlive it, and memory is summed per process; set Delegate=yes in [Service]"},
		{"read-only", c, unit(true, true), "warning: Delegate=yes with ProtectControlGroups=yes, which makes the cgroup tree read-only: workers' descendants are contained by process groups only: one that leaves its worker's session can outlive it, and memory is summed per process; set ProtectControlGroups=no in [Service]"},
		{"limits, no delegate", &limited, unit(false, false), "error: no Delegate=: memory-max and cpu-weight cannot be enforced: workers get no cgroup of their own; set Delegate=yes in [Service]"},
		{"limits, read-only", &limited, unit(true, true), "error: Delegate=yes with ProtectControlGroups=yes, which makes the cgroup tree read-only: memory-max and cpu-weight cannot be enforced: workers get no cgroup of their own; set ProtectControlGroups=no in [Service]"},
	} {
		var got []string
		for _, f := range Check(tc.c, tc.s) {
			got = append(got, string(f.Severity)+": "+f.String())
		}
		if strings.Join(got, "\n") != tc.want {
			t.Errorf("%s: %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestNotifyReload(t *testing.T) {
	c := &config.Config{Command: []string{"app"}}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	unit := func(exec bool, sig int) *sdbus.Service {
		return &sdbus.Service{Unit: "app.service", Type: "notify-reload", NotifyAccess: "main", KillMode: "mixed", TimeoutStop: time.Minute, Watchdog: 30 * time.Second, ExecReload: exec, ReloadSignal: sig, Delegate: true}
	}
	for _, c2 := range []struct {
		svc  *sdbus.Service
		want string
	}{
		{unit(false, 1), "warning: Type=notify-reload: systemd cannot hear that a reload failed, so systemctl reload exits 0 when baton refuses the config or the new generation does not boot (the old one keeps serving; the log says why); set Type=notify and ExecReload=/usr/bin/baton reload --wait in [Service]"},
		{unit(true, 1), "warning: Type=notify-reload with ExecReload=: systemctl reload both sends SIGHUP and runs ExecReload=, so every reload rolls the workers twice (the second queued behind the first); set Type=notify in [Service]"},
		{unit(false, 12), "warning: Type=notify-reload: systemd cannot hear that a reload failed, so systemctl reload exits 0 when baton refuses the config or the new generation does not boot (the old one keeps serving; the log says why); set Type=notify and ExecReload=/usr/bin/baton reload --wait in [Service]\n" +
			"error: ReloadSignal=SIGUSR2: baton reloads on SIGHUP only (SIGUSR2 upgrades it in place, SIGTTIN and SIGTTOU scale it); set ReloadSignal=SIGHUP in [Service]"},
	} {
		var got []string
		for _, f := range Check(c, c2.svc) {
			got = append(got, string(f.Severity)+": "+f.String())
		}
		if strings.Join(got, "\n") != c2.want {
			t.Errorf("ExecReload %v, ReloadSignal %d:\n%s\nwant:\n%s", c2.svc.ExecReload, c2.svc.ReloadSignal, strings.Join(got, "\n"), c2.want)
		}
	}
}
