package workers

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/config"
	"golang.org/x/sys/unix"
)

// worker is one process. Only the Run goroutine touches it, but for
// lastLine, which its output pumps write.
type worker struct {
	id        string // unique in this baton's life, names its cell
	slot, gen int
	cfg       *config.Config // its generation's config
	sockets   activation.Set // the sockets it was given
	pid       int
	proc      process
	state     State
	alarm     alarm

	// reason and detail say why it is stopping (detail in words, for logs:
	// "replaced by generation 3").
	reason StopReason
	detail string
	// retired workers belong to no slot: nothing replaces them when they
	// exit.
	retired bool

	spawned, readyAt, stoppingAt time.Time
	status                       string // last STATUS=: the worker's words, escaped wherever shown
	execErr                      string // why the shim could not execute the command
	mainPID                      int    // MAINPID= if the worker named a descendant

	bootDeadline  time.Time     // Starting: EXTEND_TIMEOUT_USEC= moves it
	watchdog      time.Duration // WATCHDOG_USEC= changes it
	lastHeartbeat time.Time
	pinger        int           // who sent the last WATCHDOG=1
	reqs          requestSet    // requests in flight, for workers that report them
	recycleAt     time.Time     // max-lifetime less jitter; zero: never
	maxRSS        int64         // max-memory less jitter; zero: no limit
	deadline      time.Time     // the current stop step's deadline
	budget        time.Duration // the graceful stop's budget, for logs
	killWait      time.Duration

	outR, errR *os.File
	lastLine   atomic.Pointer[string]
	// failure is set when the worker failed (a clock, or an exit baton did
	// not ask for), for reload and start errors.
	failure *WorkerFailure
}

// exitEvent is sent once the process was reaped and what it wrote was
// read (or a moment passed).
type exitEvent struct {
	w      *worker
	status unix.WaitStatus
}

// execEvent is sent when the shim's report pipe closes: errMsg is empty when
// the real command was executed.
type execEvent struct {
	w      *worker
	errMsg string
}

// describeExit renders a wait status as systemd's logs do.
func describeExit(ws unix.WaitStatus) (string, bool) {
	switch {
	case ws.Signaled():
		s := fmt.Sprintf("killed by signal %s", signalName(ws.Signal()))
		if ws.CoreDump() {
			s += " (core dumped)"
		}
		return s, false
	case ws.ExitStatus() == 0:
		return "exited with status 0", true
	default:
		return fmt.Sprintf("exited with status %d", ws.ExitStatus()), false
	}
}

func signalName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return fmt.Sprintf("%d", int(s))
}

// when says when w's life ended relative to its readiness.
func (w *worker) when(now time.Time) string {
	if w.readyAt.IsZero() {
		return fmt.Sprintf("%s after spawn, before READY=1", since(now.Sub(w.spawned)))
	}
	return fmt.Sprintf("%s after READY=1", since(now.Sub(w.readyAt)))
}

// failed records how w failed.
func (w *worker) failedWith(how string, now time.Time) *WorkerFailure {
	f := &WorkerFailure{Slot: w.slot, Generation: w.gen, PID: w.pid, How: how, When: w.when(now), Status: w.status}
	if l := w.lastLine.Load(); l != nil {
		f.LastLine = *l
	}
	w.failure = f
	return f
}
