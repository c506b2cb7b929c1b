package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/contain"
	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/fdutil"
	"github.com/batonhq/baton/internal/proc"
	"github.com/batonhq/baton/workers"
	"golang.org/x/sys/unix"
)

// upgradeEnv carries the upgradeState to the baton executed in place.
const upgradeEnv = "BATON_UPGRADE_STATE"

// upgradeState is what a baton hands to the binary it executes in place:
// the pool (workers.Handoff) and the fds cmd/baton owns.
type upgradeState struct {
	Handoff       *workers.Handoff
	ControlFD     int
	ControlPath   string
	MetricsFD     int // -1: none
	MetricsName   string
	MetricsAddr   string
	MetricsOrigin string
	ClientFD      int // -1: nobody waits for the answer
	OldVersion    string
	Reason        string
	// RuntimeDir and OwnsRuntimeDir say the same as Registration, for a
	// baton from before the registry, should the new image be older.
	RuntimeDir     string
	OwnsRuntimeDir bool
	// Cgroups says the workers live in cgroups of their own: the unit
	// delegated baton's cgroup, which the new image cannot ask systemd
	// again (a handed-over baton skips its D-Bus checks).
	Cgroups bool
	// OrphanSignal is the workers' parent-death signal, chosen from the
	// unit (orphanSignal), for the workers the new image forks.
	OrphanSignal int
	Registration *control.Registration
	// Reloading: a reload announced to systemd (RELOADING=1) awaits its
	// READY=1, which the new image sends.
	Reloading bool
}

// takeUpgradeState reads (and removes) the state a predecessor left.
func takeUpgradeState() (*upgradeState, error) {
	v, ok := os.LookupEnv(upgradeEnv)
	if !ok {
		return nil, nil
	}
	if err := os.Unsetenv(upgradeEnv); err != nil {
		return nil, err
	}
	var st upgradeState
	if err := json.Unmarshal([]byte(v), &st); err != nil {
		return nil, fmt.Errorf("%s: %w", upgradeEnv, err)
	}
	if st.Handoff == nil {
		return nil, fmt.Errorf("%s: no pool", upgradeEnv)
	}
	return &st, nil
}

// binaryID identifies the file at path, to notice a package upgrade
// replacing it.
func binaryID(path string) (uint64, uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, 0, err
	}
	return st.Dev, st.Ino, nil
}

// upgrader executes a new baton binary in place.
type upgrader struct {
	mu          sync.Mutex
	exe         string
	dev, ino    uint64
	ctl         *control.Server
	metricsSock *activation.Socket
	reg         *control.Registration
}

func newUpgrader() (*upgrader, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	dev, ino, err := binaryID(exe)
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	return &upgrader{exe: exe, dev: dev, ino: ino}, nil
}

// changed reports whether the binary on disk is no longer the one running.
func (u *upgrader) changed() bool {
	dev, ino, err := binaryID(u.exe)
	return err == nil && (dev != u.dev || ino != u.ino)
}

// probe runs the new binary once, so that one that cannot even start is
// refused while this baton still runs.
func probe(ctx context.Context, exe string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Through the reaper, which owns every child of this process.
	out, err := proc.Output(ctx, []string{exe, "version"}, os.Environ())
	if err != nil {
		var ee *proc.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("new binary %s does not run: %w", exe, err)
	}
	v := strings.TrimSpace(string(out))
	if !strings.HasPrefix(v, "baton ") {
		return "", fmt.Errorf("new binary %s is not baton: its version says %q", exe, v)
	}
	return v, nil
}

// upgrade replaces this process with the binary on disk, keeping the pid,
// the sockets, the control socket and the workers. It returns only when it
// could not; this baton then goes on unchanged.
func (h *controlHandler) upgrade(ctx context.Context, reason string) (string, error) {
	u := h.up
	u.mu.Lock()
	defer u.mu.Unlock()
	newVersion, err := probe(ctx, u.exe)
	if err != nil {
		h.log.WithError(err).Error("upgrade refused; this baton goes on")
		return "", fmt.Errorf("upgrade refused, nothing changed: %w", err)
	}
	hand, resume, err := h.sup.PrepareHandoff(ctx)
	if err != nil {
		return "", fmt.Errorf("upgrade refused: %w", err)
	}
	st := upgradeState{Handoff: hand, MetricsFD: -1, ClientFD: -1, OldVersion: versionString(), Reason: reason,
		RuntimeDir: u.reg.Dir, OwnsRuntimeDir: u.reg.OwnsDir, Registration: u.reg, ControlPath: u.ctl.Path(),
		Cgroups: h.contain != nil && h.contain.Kind() == contain.KindCgroup, OrphanSignal: int(h.orphanSignal)}
	_, st.Reloading = h.notes.state()
	var opened []int
	keep := func(fd int) error {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return err
		}
		opened = append(opened, fd)
		return nil
	}
	undo := func() {
		for _, fd := range opened {
			_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
		resume()
	}
	fd, err := u.ctl.FD()
	if err == nil {
		err = keep(fd)
	}
	st.ControlFD = fd
	if err == nil && u.metricsSock != nil {
		var mfd int
		if mfd, err = fdutil.Raw(u.metricsSock.File); err == nil {
			err = keep(mfd)
		}
		st.MetricsFD, st.MetricsName, st.MetricsAddr, st.MetricsOrigin = mfd, u.metricsSock.Name, u.metricsSock.Addr, string(u.metricsSock.Origin)
	}
	if cfd, ok := control.ConnFD(ctx); ok && err == nil {
		if err = keep(cfd); err == nil {
			st.ClientFD = cfd
		}
	}
	var state []byte
	if err == nil {
		state, err = json.Marshal(st)
	}
	if err != nil {
		undo()
		return "", fmt.Errorf("upgrade failed, this baton goes on: %w", err)
	}
	env := []string{upgradeEnv + "=" + string(state)}
	for _, kv := range activation.StripEnv(os.Environ()) {
		if !strings.HasPrefix(kv, upgradeEnv+"=") {
			env = append(env, kv)
		}
	}
	h.log.Infof("upgrading in place (%s): %s -> %s, pid %d", reason, st.OldVersion, newVersion, os.Getpid())
	// On the fork thread: the workers' parent thread must survive the
	// execve(2), or their parent-death signal kills them.
	err = proc.Exec(u.exe, os.Args, env)
	undo()
	err = fmt.Errorf("upgrade failed, this baton goes on: exec %s: %w", u.exe, err)
	h.log.Error(err)
	return "", err
}

// Upgrade is `baton upgrade` over the control socket.
func (h *controlHandler) Upgrade(ctx context.Context) (string, error) {
	return h.upgrade(ctx, "baton upgrade")
}

// finishUpgrade runs in the new baton once its supervisor runs: it rolls
// the workers like a reload and answers whoever asked for the upgrade; and
// systemd, when a SIGHUP started it (epoch, from reloadNotifier.adopt).
func (h *controlHandler) finishUpgrade(st *upgradeState, epoch uint64) {
	msg, err := h.reload(context.Background(), true, "upgrade")
	if nerr := h.notes.end(epoch, rolled(err)); nerr != nil {
		h.log.WithError(nerr).Warn("cannot tell systemd that the reload ended")
	}
	prefix := fmt.Sprintf("upgraded in place from %s to %s (pid %d)", st.OldVersion, versionString(), os.Getpid())
	if err != nil {
		h.log.WithError(err).Errorf("%s, but rolling the workers failed", prefix)
	} else {
		h.log.Infof("%s; %s", prefix, msg)
	}
	if st.ClientFD < 0 {
		return
	}
	resp := control.Response{OK: err == nil, Message: prefix + "; " + msg}
	if err != nil {
		resp.Error = fmt.Sprintf("%s, but rolling the workers failed: %v", prefix, err)
	}
	if err := control.Reply(st.ClientFD, resp); err != nil {
		h.log.WithError(err).Warn("answer the upgrade's caller")
	}
}

// upgradeCommand is `baton upgrade [NAME]`: execute the binary on disk in
// place.
func upgradeCommand(args []string) error {
	fs := newFlagSet("upgrade")
	path := controlFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sock, err := findControl(*path, fs.Args(), "SIGUSR2 upgrades too")
	if err != nil {
		return err
	}
	msg, err := control.Call(context.Background(), sock, control.Request{Command: "upgrade", Wait: true})
	if err != nil {
		return fmt.Errorf("upgrade failed: %w", err)
	}
	fmt.Println(msg)
	return nil
}
