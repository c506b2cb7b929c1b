package workers

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/config"
)

// State is where a worker is in its life.
type State string

const (
	// Starting: spawned, not yet ready (boot clock running).
	Starting State = "starting"
	// Ready: READY=1 received (or, with exec readiness, command executed).
	Ready State = "ready"
	// Stopping: told to stop (or said STOPPING=1); being drained.
	Stopping State = "stopping"
)

// worker is one process. Only the Run goroutine touches it.
type worker struct {
	slot, gen int
	cfg       *config.Config // its generation's config
	sockets   activation.Set // the sockets it was given
	pid       int
	cmd       *exec.Cmd
	state     State
	spawned   time.Time
	readyAt   time.Time
	status    string // last STATUS=
	mainPID   int    // MAINPID= if the worker named another process

	// bootDeadline is when a Starting worker fails its boot.
	bootDeadline time.Time
	// watchdog is the worker's liveness interval (watchdog-timeout, or what
	// it set with WATCHDOG_USEC=); lastHeartbeat its last WATCHDOG=1, or
	// when it became ready.
	watchdog      time.Duration
	lastHeartbeat time.Time
	// requests in flight by id, for workers that report them.
	requests map[string]time.Time
	// escalated names the clock that expired, once the ladder started.
	escalated string
	// recycleAt and maxRSS are its recycling limits, jittered; zero: none.
	recycleAt time.Time
	maxRSS    int64
	// outR and errR are the read ends of its output pipes (nil when the
	// worker writes to baton's own stdout and stderr).
	outR, errR *os.File
	// killAt is when a Stopping worker gets SIGKILL; zero when not set.
	killAt time.Time
	// stopReason says why baton is stopping it ("" if it stopped itself).
	stopReason string
	// failed marks a stop that counts as a failure (boot timeout).
	failed bool
	// retired workers were replaced or drained away: they are not respawned
	// when they exit.
	retired bool
}

// exitEvent is sent by a worker's waiter goroutine once the process is gone.
type exitEvent struct {
	w     *worker
	state *os.ProcessState
	err   error
}

// execEvent is sent when the shim's report pipe closes: errMsg is empty when
// the real command was executed.
type execEvent struct {
	w      *worker
	errMsg string
}

// describeExit renders a wait status as systemd's logs do.
func describeExit(ps *os.ProcessState, err error) (string, bool) {
	if ps == nil {
		return fmt.Sprintf("wait failed: %v", err), false
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	switch {
	case ok && ws.Signaled():
		s := fmt.Sprintf("killed by signal %s", signalName(ws.Signal()))
		if ws.CoreDump() {
			s += " (core dumped)"
		}
		return s, false
	case ps.ExitCode() == 0:
		return "exited with status 0", true
	default:
		return fmt.Sprintf("exited with status %d", ps.ExitCode()), false
	}
}

func signalName(s syscall.Signal) string {
	names := map[syscall.Signal]string{
		syscall.SIGABRT: "SIGABRT", syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM",
		syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT", syscall.SIGSEGV: "SIGSEGV",
		syscall.SIGHUP: "SIGHUP", syscall.SIGBUS: "SIGBUS", syscall.SIGPIPE: "SIGPIPE",
		syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2", syscall.SIGILL: "SIGILL",
		syscall.SIGFPE: "SIGFPE", syscall.SIGSTOP: "SIGSTOP",
	}
	if n, ok := names[s]; ok {
		return n
	}
	return fmt.Sprintf("%d", int(s))
}

// spawn starts one worker through the shim. The returned worker is Starting;
// its waiter goroutine reports on execs and exits.
func (s *Supervisor) spawn(slot, gen int, cfg *config.Config, sockets activation.Set) (*worker, error) {
	r, wpipe, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("spawn worker %d: report pipe: %w", slot, err)
	}
	files := append(sockets.Files(), wpipe)
	reportFD := 3 + len(files) - 1
	cmd := exec.Command(s.shim, append([]string{ShimArg, "--"}, cfg.Command...)...)
	cmd.Args[0] = cfg.Command[0]
	cmd.Env = workerEnv(s.env, s.notify.Path(), len(sockets), sockets.Names(), slot, gen, reportFD, cfg.WatchdogTimeout)
	cmd.ExtraFiles = files
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = s.stdout, s.stderr
	var rOut, wOut, rErr, wErr *os.File
	if s.onOutput != nil {
		if rOut, wOut, rErr, wErr, err = outputPipes(); err != nil {
			return nil, fmt.Errorf("spawn worker %d: output pipes: %w", slot, errors.Join(err, r.Close(), wpipe.Close()))
		}
		cmd.Stdout, cmd.Stderr = wOut, wErr
	}
	// Its own process group, so that SIGKILL reaches whatever the worker
	// forked (as systemd's KillMode=mixed does with the cgroup) and a
	// terminal's Ctrl-C reaches baton only, which then stops the pool.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	// Our copies of the write ends must go, whatever happened, or EOF never
	// comes.
	cerr := wpipe.Close()
	if wOut != nil {
		cerr = errors.Join(cerr, wOut.Close(), wErr.Close())
	}
	if err != nil {
		if rOut != nil {
			err = errors.Join(err, rOut.Close(), rErr.Close())
		}
		return nil, fmt.Errorf("spawn worker %d: %w", slot, errors.Join(err, r.Close()))
	}
	if cerr != nil {
		s.log.WithError(cerr).Warn("close report pipe")
	}
	w := &worker{slot: slot, gen: gen, cfg: cfg, sockets: sockets, pid: cmd.Process.Pid, cmd: cmd, state: Starting, spawned: s.now()}
	w.bootDeadline = addClock(w.spawned, cfg.BootTimeout)
	w.watchdog = cfg.WatchdogTimeout
	s.recycleLimits(w)
	s.byPID[w.pid] = w
	s.spawns++
	s.workerLog(w).Debugf("spawned worker %d of generation %d", slot, gen)
	if rOut != nil {
		w.outR, w.errR = rOut, rErr
		go s.pump(rOut, w, "stdout")
		go s.pump(rErr, w, "stderr")
	}
	go s.wait(w, r)
	return w, nil
}

// wait runs in its own goroutine per worker: it reads the shim's report until
// EOF (exec done or process dead), then reaps the process.
func (s *Supervisor) wait(w *worker, report *os.File) {
	msg, _ := io.ReadAll(io.LimitReader(report, 4096))
	if err := report.Close(); err != nil {
		s.log.WithError(err).Warn("close report pipe")
	}
	s.events <- execEvent{w: w, errMsg: string(msg)}
	err := w.cmd.Wait()
	s.events <- exitEvent{w: w, state: w.cmd.ProcessState, err: err}
}

// waitAdopted reaps a worker inherited from the baton this one replaced in
// place: it is still this process's child, so wait4 works on it.
func (s *Supervisor) waitAdopted(w *worker) {
	p, err := os.FindProcess(w.pid)
	if err != nil {
		s.events <- exitEvent{w: w, err: err}
		return
	}
	ps, err := p.Wait()
	s.events <- exitEvent{w: w, state: ps, err: err}
}

// signal sends sig to the worker's process, or with group to its whole
// process group.
func (w *worker) signal(sig syscall.Signal, group bool) error {
	pid := w.pid
	if group {
		pid = -pid
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal worker %d (pid %d) with %s: %w", w.slot, w.pid, signalName(sig), err)
	}
	return nil
}
