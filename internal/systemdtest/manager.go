package systemdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Manager is a running private systemd user manager.
type Manager struct {
	// RuntimeDir is its XDG_RUNTIME_DIR; units go in UnitDir below it.
	RuntimeDir string
	UnitDir    string
	cmd        *exec.Cmd
	exited     chan error
	cgroups    []string
	logPath    string
}

// bootScript confines the manager to fresh cgroups, hides the host's
// /run/systemd and execs the user manager in place.
const bootScript = `set -e
for cg in "$@"; do mkdir -p "$cg"; echo $$ > "$cg/cgroup.procs"; done
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/systemd/system
exec /usr/lib/systemd/systemd --user
`

// cgroupRoots lists the hierarchies where the manager needs its own
// subtree: the cgroup2 root on a unified system, else the named systemd
// hierarchy and the hybrid unified one.
func cgroupRoots() []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.procs"); err == nil {
		return []string{"/sys/fs/cgroup"}
	}
	var roots []string
	for _, r := range []string{"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"} {
		if _, err := os.Stat(r + "/cgroup.procs"); err == nil {
			roots = append(roots, r)
		}
	}
	return roots
}

// Start boots a manager with its state under dir and waits until it
// answers systemctl.
func Start(ctx context.Context, dir string) (*Manager, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("systemdtest: needs root for unshare and cgroups (the development machines and CI run as root)")
	}
	m := &Manager{RuntimeDir: filepath.Join(dir, "xdg"), logPath: filepath.Join(dir, "manager.log"), exited: make(chan error, 1)}
	m.UnitDir = filepath.Join(m.RuntimeDir, "systemd", "user")
	if err := os.MkdirAll(m.RuntimeDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(m.RuntimeDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(m.UnitDir, 0o755); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("baton-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	for _, r := range cgroupRoots() {
		m.cgroups = append(m.cgroups, filepath.Join(r, name))
	}
	logf, err := os.Create(m.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := append([]string{"-m", "--propagation", "private", "/bin/sh", "-c", bootScript, "boot"}, m.cgroups...)
	m.cmd = exec.Command("unshare", args...)
	m.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "XDG_RUNTIME_DIR=" + m.RuntimeDir, "HOME=" + dir}
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start user manager: %w", err)
	}
	go func() { m.exited <- m.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Not is-system-running: it answers "offline" whenever the caller's
		// own namespace has no /run/systemd/system, which ours has not.
		out, _ := m.Systemctl(ctx, "show", "--value", "-p", "SystemState")
		state := strings.TrimSpace(out)
		if state == "degraded" || state == "running" {
			return m, nil
		}
		select {
		case err := <-m.exited:
			m.exited <- err
			logb, _ := os.ReadFile(m.logPath)
			return nil, errors.Join(fmt.Errorf("user manager exited during boot: %v: %s", err, logb), m.cleanupCgroups())
		default:
		}
		if time.Now().After(deadline) {
			return nil, errors.Join(fmt.Errorf("user manager did not come up within 30s (last state %q)", state), m.Stop())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Env is the environment for commands that talk to this manager.
func (m *Manager) Env() []string {
	return []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "XDG_RUNTIME_DIR=" + m.RuntimeDir}
}

// Systemctl runs systemctl --user with args and returns its combined output.
func (m *Manager) Systemctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "systemctl", append([]string{"--user", "--no-pager"}, args...)...)
	cmd.Env = m.Env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("systemctl --user %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Show returns one unit property's value.
func (m *Manager) Show(ctx context.Context, unit, property string) (string, error) {
	out, err := m.Systemctl(ctx, "show", "--value", "-p", property, unit)
	return strings.TrimSpace(out), err
}

// MainPID returns a service's main pid, 0 when it has none.
func (m *Manager) MainPID(ctx context.Context, unit string) (int, error) {
	v, err := m.Show(ctx, unit, "MainPID")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(v)
}

// WriteUnit writes a unit file and reloads the manager.
func (m *Manager) WriteUnit(ctx context.Context, name, body string) error {
	if err := os.WriteFile(filepath.Join(m.UnitDir, name), []byte(body), 0o644); err != nil {
		return err
	}
	_, err := m.Systemctl(ctx, "daemon-reload")
	return err
}

// Procs lists every process in the manager's cgroup subtree, the manager
// itself included.
func (m *Manager) Procs() []int {
	if len(m.cgroups) == 0 {
		return nil
	}
	var pids []int
	_ = filepath.WalkDir(m.cgroups[0], func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
		return nil
	})
	return pids
}

// Stop stops the manager and everything it ran, and removes its cgroups.
func (m *Manager) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = m.Systemctl(ctx, "exit")
	select {
	case <-m.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.exited
	}
	return m.cleanupCgroups()
}

func (m *Manager) cleanupCgroups() error {
	// Anything still in the subtree (a unit that ignored the stop) goes.
	deadline := time.Now().Add(10 * time.Second)
	for pids := m.Procs(); len(pids) > 0; pids = m.Procs() {
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v survive in %s", pids, m.cgroups[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	var errs []error
	for _, cg := range m.cgroups {
		var dirs []string
		_ = filepath.WalkDir(cg, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Log is the manager's own output, for test failure messages.
func (m *Manager) Log() string {
	b, _ := os.ReadFile(m.logPath)
	return string(b)
}

// UnitProcs lists the processes in a unit's cgroup (NTasks counts threads).
func (m *Manager) UnitProcs(ctx context.Context, unit string) ([]int, error) {
	cg, err := m.Show(ctx, unit, "ControlGroup")
	if err != nil || cg == "" {
		return nil, err
	}
	root := "/sys/fs/cgroup"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.procs"); err != nil {
		root = "/sys/fs/cgroup/systemd"
	}
	b, err := os.ReadFile(filepath.Join(root, cg, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids, nil
}
