package workers

import (
	"strconv"
	"strings"

	"github.com/batonhq/baton/internal/config"
)

// reserved are variables addressed to baton by its own service manager or
// set per worker by baton; a worker must never see baton's values.
var reserved = []string{
	"NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
	"WATCHDOG_USEC", "WATCHDOG_PID", "BATON_WORKER", "BATON_GENERATION",
	execFDEnv,
}

// baseEnv strips the reserved variables from env once, at start.
func baseEnv(env []string) []string {
	out := make([]string, 0, len(env))
next:
	for _, kv := range env {
		for _, r := range reserved {
			if strings.HasPrefix(kv, r+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// notifyFor is the NOTIFY_SOCKET a worker of cfg gets: baton's, when it
// has something to say over it (READY=1 with notify readiness, heartbeats
// with a watchdog, request reports with a request clock), and none
// otherwise, as systemd sets none for Type=simple and Type=exec services
// without NotifyAccess= or WatchdogSec= (programs such as puma complain
// about a NOTIFY_SOCKET they cannot use).
func (s *Supervisor) notifyFor(cfg *config.Config) string {
	if cfg.Readiness == config.ReadinessNotify || cfg.WatchdogTimeout != config.Infinity || cfg.RequestTimeout != config.Infinity {
		return s.notify.Path()
	}
	return ""
}

// workerEnv is what one worker gets: systemd's protocol variables pointing at
// baton, and its slot and generation. LISTEN_PID and WATCHDOG_PID are added
// by the shim, which knows the pid.
func workerEnv(base []string, notifySocket string, nSockets int, names string, slot, gen int, reportFD int, cfg *config.Config) []string {
	env := make([]string, 0, len(base)+len(cfg.Environment)+8)
	env = append(env, base...)
	// The config's environment overrides baton's own (later entries win
	// for every libc; the duplicates are dropped anyway).
	env = overlay(env, cfg.Environment)
	if notifySocket != "" {
		env = append(env, "NOTIFY_SOCKET="+notifySocket)
	}
	env = append(env,
		"BATON_WORKER="+strconv.Itoa(slot),
		"BATON_GENERATION="+strconv.Itoa(gen),
		execFDEnv+"="+strconv.Itoa(reportFD),
	)
	if cfg.WatchdogTimeout != config.Infinity {
		env = append(env, "WATCHDOG_USEC="+strconv.FormatInt(cfg.WatchdogTimeout.Microseconds(), 10))
	}
	if nSockets > 0 {
		env = append(env, "LISTEN_FDS="+strconv.Itoa(nSockets), "LISTEN_FDNAMES="+names)
	}
	return env
}

// overlay sets each KEY=VALUE of add in env, replacing what env had.
func overlay(env, add []string) []string {
	if len(add) == 0 {
		return env
	}
	set := map[string]bool{}
	for _, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	out := env[:0]
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			out = append(out, kv)
		}
	}
	return append(out, add...)
}
