package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/procfs"
	"github.com/batonhq/baton/internal/sdbus"
	"github.com/sirupsen/logrus"
)

// firstRuntimeDir is the first of systemd's RuntimeDirectory= paths.
func firstRuntimeDir() string {
	d := os.Getenv("RUNTIME_DIRECTORY")
	for i := range d {
		if d[i] == ':' {
			return d[:i]
		}
	}
	return d
}

// register finds baton's runtime directory, where the notify and control
// sockets live, and its registry entry (internal/control's registry):
// systemd's RuntimeDirectory= when set, else an entry baton creates, else
// (baton started by hand, with no XDG_RUNTIME_DIR) a private temporary
// directory. After an upgrade in place, the one the previous image had.
func register(adopted *upgradeState, unit *sdbus.Service, log logrus.FieldLogger) (*control.Registration, error) {
	pid := os.Getpid()
	rt := firstRuntimeDir()
	if adopted != nil {
		switch {
		case adopted.Registration != nil:
			return adopted.Registration, nil
		case adopted.RuntimeDir != "" && adopted.OwnsRuntimeDir:
			// Executed by a baton from before the registry, which kept its
			// sockets in a temporary directory: they stay there.
			return &control.Registration{Dir: adopted.RuntimeDir, OwnsDir: true, PID: pid}, nil
		case adopted.RuntimeDir != "":
			// ... or in systemd's RuntimeDirectory=: registered now, as at
			// a start, so that a package upgrade leaves it findable.
			rt = adopted.RuntimeDir
		}
	}
	registry := control.RegistryDir(os.Getenv, os.Geteuid())
	var name string
	switch u := ownUnit(unit); {
	case u != "":
		name = control.InstanceName(u)
	case os.Getenv("XDG_RUNTIME_DIR") != "":
		// By hand, in a user's session.
		name = "pid-" + strconv.Itoa(pid)
	default:
		// By hand, as root: the system registry is the service manager's.
		registry = ""
	}
	reg, note, err := control.Register(registry, name, rt, pid)
	switch {
	case note != "" && err == nil && reg.Entry != "":
		log.Warn(note)
	case note != "":
		log.Warnf("control socket not registered as %s: %s; baton status and reload need --control", name, note)
	}
	if err == nil {
		return reg, nil
	}
	if registry != "" {
		log.WithError(err).Warnf("cannot register in %s; baton status and reload need --control (set RuntimeDirectory=baton/%s in the unit to fix)", registry, name)
	}
	d, terr := os.MkdirTemp("", "baton-")
	if terr != nil {
		return nil, fmt.Errorf("create runtime directory: %w", terr)
	}
	return &control.Registration{Dir: d, OwnsDir: true, PID: pid}, nil
}

// ownUnit is the service unit whose main process baton is: "" when baton
// was not started by a service manager (only a service's main process is
// a child of systemd; its other processes inherit the cgroup but not that).
func ownUnit(unit *sdbus.Service) string {
	if procfs.Comm(os.Getppid()) != "systemd" {
		return ""
	}
	if unit != nil {
		return unit.Unit
	}
	return procfs.Unit(os.Getpid())
}

// findControl is the control socket a client command talks to: --control
// when given, else the baton named on the command line, else that of the
// unit whose ExecReload= this is ($RUNTIME_DIRECTORY, $MAINPID), else the
// only one running. hint names a signal that does the same without one.
func findControl(flag string, args []string, hint string) (string, error) {
	if flag != "" {
		if len(args) > 0 {
			return "", usageError{fmt.Errorf("a name (%s) and --control name the baton twice", args[0])}
		}
		return flag, nil
	}
	if len(args) > 1 {
		return "", usageError{fmt.Errorf("name one baton, got %q", args)}
	}
	q := control.Query{RuntimeDir: firstRuntimeDir(), Dirs: control.SearchDirs(os.Getenv)}
	if len(args) == 1 {
		q.Name = args[0]
	}
	if v := os.Getenv("MAINPID"); v != "" {
		if pid, err := strconv.Atoi(v); err == nil {
			q.MainPID = pid
		}
	}
	path, err := control.Find(q)
	switch {
	case err == nil:
		return path, nil
	case errors.Is(err, control.ErrAmbiguous):
		return "", usageError{err}
	case hint != "":
		return "", fmt.Errorf("%w (%s)", err, hint)
	}
	return "", err
}
