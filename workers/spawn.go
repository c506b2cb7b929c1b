package workers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/contain"
	"github.com/batonhq/baton/internal/proc"
	"github.com/batonhq/baton/internal/procfs"
	"golang.org/x/sys/unix"
)

// spawnSpec is one worker process to start: the shim with the worker's
// command, its environment, its fds from 3 on, and its output.
type spawnSpec struct {
	id             string
	path           string
	argv, env      []string
	files          []*os.File // fds 3.. in order
	stdout, stderr *os.File
	limits         contain.Limits
	// onExec is called once the shim executed the command (msg empty) or
	// could not (msg says why); onExit after it, once the process was
	// reaped. Neither may block for long.
	onExec func(msg string)
	onExit func(unix.WaitStatus)
}

// process is a started worker, as the supervisor reaches it.
type process interface {
	PID() int
	// Signal signals the worker's main process only (KillMode=mixed's
	// first step).
	Signal(sig syscall.Signal) error
	// KillAll SIGKILLs the worker and everything it forked.
	KillAll() error
	// Memory is what the worker and everything it forked use, in bytes.
	Memory() (int64, error)
	// Release frees what the process held, once its exit was handled;
	// leftovers of its cell are killed.
	Release() error
}

// spawner starts workers; tests replace it with a fake that forks nothing.
type spawner interface {
	Spawn(spec *spawnSpec) (process, error)
	Adopt(id string, pid int, onExit func(unix.WaitStatus)) (process, error)
}

// Containment gives each worker a cell that holds everything it forks: a
// cgroup of its own under a delegated subtree, or its session and process
// tree (internal/contain). Nil: sessions only, without attribution of
// escaped descendants.
type Containment interface {
	New(id string, l contain.Limits) (contain.Cell, error)
	Adopt(id string, pid int) (contain.Cell, error)
	// Owner names the worker (by id) a pid belongs to, if any.
	Owner(pid int) (id string, ok bool)
	// Sweep kills what belongs to no cell: leftovers of a baton that
	// crashed. Called once, after the handed-over workers were adopted.
	Sweep(ctx context.Context) ([]string, error)
}

// cellCloseWait bounds how long releasing a cell waits for what the
// worker left behind to die.
const cellCloseWait = 30 * time.Second

// procSpawner forks workers through the process's reaper (internal/proc).
type procSpawner struct {
	contain      Containment
	orphanSignal syscall.Signal // the workers' parent-death signal
	// onError receives errors from releasing cells, which happens off the
	// caller's goroutine.
	onError func(error)
}

func (p *procSpawner) Spawn(spec *spawnSpec) (process, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	// The shim's report pipe: close-on-exec in the shim, so it reaches EOF
	// when the command was executed, or carries the reason it was not.
	report, reportW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("report pipe: %w", err)
	}
	fds := []uintptr{devnull.Fd(), spec.stdout.Fd(), spec.stderr.Fd()}
	for _, f := range spec.files {
		fds = append(fds, f.Fd())
	}
	fds = append(fds, reportW.Fd())
	sys := &syscall.SysProcAttr{
		// A session of its own, as systemd gives each service: a terminal's
		// Ctrl-C reaches baton only, and the process group is the
		// fallback's unit of killing.
		Setsid: true,
		// A baton killed outside systemd leaves no orphans, or under
		// ExitType=cgroup, orphans that finish their requests. Linux ties
		// this to the forking thread, hence internal/proc's one fork
		// thread.
		Pdeathsig: p.orphanSignal,
	}
	var cell contain.Cell
	env := spec.env
	if p.contain != nil {
		if cell, err = p.contain.New(spec.id, spec.limits); err != nil {
			return nil, fmt.Errorf("contain: %w", errors.Join(err, report.Close(), reportW.Close()))
		}
		cell.SysProcAttr(sys)
		env = append(append([]string(nil), env...), cell.Env()...)
	}
	h := &procHandle{cell: cell, onError: p.onError}
	reported := make(chan struct{})
	pid, pidfd, err := proc.Default().Start(spec.path, spec.argv, &syscall.ProcAttr{Env: env, Files: fds, Sys: sys}, func(e proc.Exit) {
		if cell != nil {
			cell.Reaped()
		}
		// The exec's outcome first, then the exit.
		go func() {
			select {
			case <-reported:
			case <-time.After(time.Second):
			}
			spec.onExit(e.Status)
		}()
	})
	// Ours must go, whatever happened, or EOF never comes.
	cerr := reportW.Close()
	if err != nil {
		err = errors.Join(err, report.Close())
		if cell != nil {
			ctx, cancel := context.WithTimeout(context.Background(), cellCloseWait)
			err = errors.Join(err, cell.Close(ctx))
			cancel()
		}
		return nil, err
	}
	h.pid, h.pidfd = pid, pidfd
	if cell != nil {
		cell.Started(pid)
	}
	if cerr != nil && p.onError != nil {
		p.onError(fmt.Errorf("close the worker's end of its report pipe: %w", cerr))
	}
	go func() {
		msg, err := readAllLimit(report, 4096)
		if cerr := report.Close(); err == nil {
			err = cerr
		}
		if err != nil && p.onError != nil {
			p.onError(fmt.Errorf("worker pid %d: exec report: %w", pid, err))
		}
		spec.onExec(msg)
		close(reported)
	}()
	return h, nil
}

func (p *procSpawner) Adopt(id string, pid int, onExit func(unix.WaitStatus)) (process, error) {
	h := &procHandle{pid: pid, pidfd: -1, onError: p.onError}
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		h.pidfd = fd
	}
	if p.contain != nil {
		cell, err := p.contain.Adopt(id, pid)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("contain: %w", err), h.Release())
		}
		h.cell = cell
	}
	cell := h.cell
	proc.Default().Adopt(pid, func(e proc.Exit) {
		if cell != nil {
			cell.Reaped()
		}
		onExit(e.Status)
	})
	return h, nil
}

type procHandle struct {
	pid, pidfd int
	cell       contain.Cell
	onError    func(error)
}

func (h *procHandle) PID() int { return h.pid }

func (h *procHandle) Signal(sig syscall.Signal) error {
	var err error
	if h.pidfd >= 0 {
		// Through the pidfd: never a recycled pid.
		err = unix.PidfdSendSignal(h.pidfd, sig, nil, 0)
	} else {
		err = syscall.Kill(h.pid, sig)
	}
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

func (h *procHandle) KillAll() error {
	if h.cell != nil {
		return h.cell.Kill()
	}
	// The worker leads its own session and process group.
	if err := syscall.Kill(-h.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

func (h *procHandle) Memory() (int64, error) {
	if h.cell != nil {
		return h.cell.Memory()
	}
	return procfs.TreeRSS(h.pid)
}

func (h *procHandle) Release() error {
	var err error
	if h.pidfd >= 0 {
		err = unix.Close(h.pidfd)
		h.pidfd = -1
	}
	if h.cell != nil {
		// Waits for the cell to empty: not on the caller's goroutine.
		cell := h.cell
		h.cell = nil
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), cellCloseWait)
			defer cancel()
			if err := cell.Close(ctx); err != nil && h.onError != nil {
				h.onError(fmt.Errorf("release worker pid %d: %w", h.pid, err))
			}
		}()
	}
	return err
}
