package unitcheck

import (
	"fmt"
	"slices"
	"strings"
	"syscall"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/sdbus"
	"golang.org/x/sys/unix"
)

// Severity says whether a finding breaks a guarantee (Error) or weakens one
// (Warning).
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Check compares everything baton depends on in its unit with cfg.
func Check(c *config.Config, s *sdbus.Service) []Finding {
	var out []Finding
	add := func(sev Severity, problem, fix string) {
		out = append(out, Finding{Severity: sev, Problem: problem, Fix: fix})
	}
	for _, f := range StopBudget(c, s) {
		f.Severity = Error
		out = append(out, f)
	}
	switch s.Type {
	case "notify", "notify-reload":
	default:
		add(Error, fmt.Sprintf("Type=%s: systemd does not wait for baton's READY=1, so the service counts as started before any worker is ready", s.Type), "Type=notify")
	}
	switch s.NotifyAccess {
	case "main", "exec":
	case "all":
		add(Warning, "NotifyAccess=all lets every worker send systemd STATUS= and READY=1 over baton's head; workers talk to baton's own socket, so main suffices", "NotifyAccess=main")
	default:
		add(Error, fmt.Sprintf("NotifyAccess=%s: systemd ignores baton's READY=1, STATUS= and WATCHDOG=1", s.NotifyAccess), "NotifyAccess=main")
	}
	switch s.KillMode {
	case "mixed":
	case "control-group":
		add(Error, "KillMode=control-group: systemctl stop sends SIGTERM to every worker at once, racing baton's phased drain", "KillMode=mixed")
	case "process":
		add(Warning, "KillMode=process: workers left behind when baton dies are never killed", "KillMode=mixed")
	default:
		add(Error, fmt.Sprintf("KillMode=%s: nothing stops the workers with the service", s.KillMode), "KillMode=mixed")
	}
	containment(c, s, add)
	if s.Watchdog == 0 {
		problem := "no WatchdogSec=: a stuck or hollow baton is never restarted (baton sends WATCHDOG=1 only while its pool is healthy)"
		if s.ExitType == "cgroup" {
			problem += ", and with ExitType=cgroup a worker that ignores SIGTERM after baton died keeps the service from restarting"
		}
		add(Warning, problem, "WatchdogSec=30s")
	}
	if s.ExitType == "main" {
		// "" is a systemd before 250, which has no choice.
		add(Warning, "ExitType=main: should baton die (kill -9, a crash), systemd kills its workers at once and the requests in flight fail; with cgroup, they finish them first and systemd restarts baton once they are gone", "ExitType=cgroup")
	}
	switch {
	case s.Type == "notify-reload" && s.ExecReload:
		add(Warning, "Type=notify-reload with ExecReload=: systemctl reload both sends SIGHUP and runs ExecReload=, so every reload rolls the workers twice (the second queued behind the first)", "Type=notify")
	case s.Type == "notify-reload":
		// systemd 253-257 (and later) end a signalled reload with READY=1
		// whatever became of it: only a timeout fails one.
		add(Warning, "Type=notify-reload: systemd cannot hear that a reload failed, so systemctl reload exits 0 when baton refuses the config or the new generation does not boot (the old one keeps serving; the log says why)",
			"Type=notify and ExecReload=/usr/bin/baton reload --wait")
	case !s.ExecReload:
		add(Warning, "no ExecReload=: systemctl reload cannot roll a new generation nor report whether it worked", "ExecReload=/usr/bin/baton reload --wait")
	}
	if s.Type == "notify-reload" && s.ReloadSignal != 0 && s.ReloadSignal != int(syscall.SIGHUP) {
		add(Error, fmt.Sprintf("ReloadSignal=%s: baton reloads on SIGHUP only (SIGUSR2 upgrades it in place, SIGTTIN and SIGTTOU scale it)", unix.SignalName(syscall.Signal(s.ReloadSignal))), "ReloadSignal=SIGHUP")
	}
	var own []string
	for _, sock := range c.Sockets {
		if sock.Name != c.MetricsSocket && !slices.Contains(s.SocketNames, sock.Name) {
			own = append(own, sock.Name)
		}
	}
	if c.MetricsSocket != "" && !slices.Contains(s.SocketNames, c.MetricsSocket) {
		own = append(own, c.MetricsSocket)
	}
	if len(own) > 0 && int(s.FileDescriptorStoreMax) < len(own) {
		add(Error, fmt.Sprintf("baton binds %s itself (no .socket unit passes %s) but FileDescriptorStoreMax=%d: those sockets close on every restart and crash, refusing connections",
			strings.Join(own, ", "), plural(len(own), "it", "them"), s.FileDescriptorStoreMax), fmt.Sprintf("FileDescriptorStoreMax=%d", max(16, len(own))))
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// containment checks that baton can give each worker a cgroup of its own
// (docs/containment.md): without one, limits are not enforced (an error
// when the config sets some) and a descendant that leaves its worker's
// session is found only by ancestry and environment.
func containment(c *config.Config, s *sdbus.Service, add func(sev Severity, problem, fix string)) {
	var limits []string
	if c.MemoryMax > 0 {
		limits = append(limits, "memory-max")
	}
	if c.CPUWeight > 0 {
		limits = append(limits, "cpu-weight")
	}
	sev, what := Warning, "workers' descendants are contained by process groups only: one that leaves its worker's session can outlive it, and memory is summed per process"
	if len(limits) > 0 {
		sev, what = Error, fmt.Sprintf("%s cannot be enforced: workers get no cgroup of their own", strings.Join(limits, " and "))
	}
	switch {
	case !s.Delegate:
		add(sev, "no Delegate=: "+what, "Delegate=yes")
	case s.ProtectControlGroups:
		add(sev, "Delegate=yes with ProtectControlGroups=yes, which makes the cgroup tree read-only: "+what, "ProtectControlGroups=no")
	}
}
