package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/procfs"
)

// trigger is an event a row puts the server through.
type trigger string

const (
	reloadFast    trigger = "reload"
	reloadSlow    trigger = "reload-slow"
	reloadBroken  trigger = "reload-broken"
	restartSelf   trigger = "restart-self"
	restartSocket trigger = "restart-socket"
	kill9         trigger = "kill9"
	upgrade       trigger = "upgrade"
)

var triggers = []trigger{reloadFast, reloadSlow, reloadBroken, restartSelf, restartSocket, kill9, upgrade}

// describe is the trigger as the table says it.
func (t trigger) describe() string {
	switch t {
	case reloadFast:
		return "reload"
	case reloadSlow:
		return "reload, app boots in 2 s"
	case reloadBroken:
		return "reload into a broken app"
	case restartSelf:
		return "restart, self-bound socket"
	case restartSocket:
		return "restart, .socket unit"
	case kill9:
		return "kill -9 of the main process"
	case upgrade:
		return "self-upgrade"
	}
	return string(t)
}

// selfBound is whether the server binds its socket itself in the row; every
// other row has a .socket unit, as a careful deployment would.
func (t trigger) selfBound() bool { return t == restartSelf }

// events is how many times the row fires the trigger: once for a broken
// app, which leaves nothing to reload again.
func (t trigger) events(n int) int {
	if t == reloadBroken {
		return 1
	}
	return n
}

// how says what the system does for t, "" when it has no such thing.
func (s *system) how(t trigger) string {
	switch t {
	case reloadFast, reloadSlow, reloadBroken:
		if s.reload == "" {
			return "systemctl restart (no reload)"
		}
		return s.reload
	case restartSelf, restartSocket:
		return "systemctl restart"
	case kill9:
		return "kill -9, Restart=on-failure"
	case upgrade:
		return s.upgrade
	}
	return ""
}

// mode is what the app does at its next boot.
func (t trigger) mode() string {
	switch t {
	case reloadSlow:
		return "slow"
	case reloadBroken:
		return "broken"
	}
	return "fast"
}

// fire performs the trigger once and returns the exit status of the
// command that did it ("-" when no command ran), or why it could not.
func (e *env) fire(r *rowRun, t trigger) (exit string, err error) {
	switch t {
	case reloadFast, reloadSlow, reloadBroken:
		if err := os.WriteFile(e.modeFile, []byte(t.mode()+"\n"), 0o644); err != nil {
			return "-", err
		}
		if r.sys.reload == "" {
			return e.systemctl("restart", r.service())
		}
		return e.systemctl("reload", r.service())
	case restartSelf, restartSocket:
		return e.systemctl("restart", r.service())
	case kill9:
		return "-", e.kill9(r)
	case upgrade:
		return r.sys.doUpgrade(e, r)
	}
	return "-", fmt.Errorf("unknown trigger %q", t)
}

// triggerTimeout bounds a trigger's command: a reload job that never ends
// (puma's, when the new app cannot boot) is a result, not a hang.
const triggerTimeout = 60 * time.Second

// systemctl runs systemctl --user and returns its exit status; a non-zero
// status is a result, not an error, and so is a command still running
// after triggerTimeout ("killed after 1m0s").
func (e *env) systemctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(e.ctx, triggerTimeout)
	defer cancel()
	_, err := e.mgr.Systemctl(ctx, args...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "0", nil
	case ctx.Err() != nil && e.ctx.Err() == nil:
		return fmt.Sprintf("killed after %s", triggerTimeout), nil
	case errors.As(err, &ee):
		return fmt.Sprint(ee.ExitCode()), nil
	}
	return "-", err
}

// kill9 kills the main process and waits until the service is active
// again with a new one.
func (e *env) kill9(r *rowRun) error {
	old, err := e.mgr.MainPID(e.ctx, r.service())
	if err != nil || old == 0 {
		return fmt.Errorf("main pid of %s: %v", r.service(), err)
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		return err
	}
	return e.waitFor(30*time.Second, "a new main process after kill -9", func() bool {
		pid, _ := e.mgr.MainPID(e.ctx, r.service())
		st, _ := e.mgr.Show(e.ctx, r.service(), "ActiveState")
		return pid != 0 && pid != old && st == "active"
	})
}

func (e *env) waitFor(within time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// signalUpgrade sends the main process a signal; the server does the rest
// on its own, as with a reload by signal.
func signalUpgrade(sig string) func(e *env, r *rowRun) (string, error) {
	return func(e *env, r *rowRun) (string, error) {
		return e.systemctl("kill", "--kill-who=main", "--signal="+sig, r.service())
	}
}

// gunicornUpgrade is gunicorn's documented binary upgrade: SIGUSR2 starts
// a new master (and its workers) beside the old one; once they run,
// SIGTERM stops the old master. Under systemd the old master is the
// service's main process, so what systemd does when it exits is part of
// the result.
func gunicornUpgrade(e *env, r *rowRun) (string, error) {
	old, err := e.mgr.MainPID(e.ctx, r.service())
	if err != nil || old == 0 {
		return "-", fmt.Errorf("main pid of %s: %v", r.service(), err)
	}
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		return "-", err
	}
	// The new master writes PIDFILE.2, then forks its workers.
	pidfile := filepath.Join(r.dir, "gunicorn.pid.2")
	var master int
	if err := e.waitFor(30*time.Second, "new gunicorn master with its workers", func() bool {
		b, err := os.ReadFile(pidfile)
		if err != nil {
			return false
		}
		if _, err := fmt.Sscan(string(b), &master); err != nil {
			return false
		}
		procs, _ := e.mgr.UnitProcs(e.ctx, r.service())
		children := 0
		for _, p := range procs {
			if procfs.Parent(p) == master {
				children++
			}
		}
		return children >= e.opts.workers
	}); err != nil {
		return "-", err
	}
	if err := syscall.Kill(old, syscall.SIGTERM); err != nil {
		return "-", err
	}
	return "-", e.waitFor(30*time.Second, "exit of the old gunicorn master", func() bool { return !procfs.Alive(old) })
}

// batonUpgrade replaces baton's binary with the other build and reloads,
// as a package upgrade does; baton executes the new binary in place.
func batonUpgrade(e *env, r *rowRun) (string, error) {
	before, err := e.mgr.MainPID(e.ctx, r.service())
	if err != nil {
		return "-", err
	}
	e.upgrades++
	next := e.batonV2
	if e.upgrades%2 == 0 {
		next = e.batonV1
	}
	b, err := os.ReadFile(next)
	if err != nil {
		return "-", err
	}
	if err := os.WriteFile(e.baton+".new", b, 0o755); err != nil {
		return "-", err
	}
	if err := os.Rename(e.baton+".new", e.baton); err != nil {
		return "-", err
	}
	exit, err := e.systemctl("reload", r.service())
	if err != nil {
		return exit, err
	}
	if after, _ := e.mgr.MainPID(e.ctx, r.service()); after != before {
		return exit, fmt.Errorf("upgrade changed the main pid from %d to %d", before, after)
	}
	return exit, nil
}
