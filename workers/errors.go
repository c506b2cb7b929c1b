package workers

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrReloadFailed is what every failed rollout's error Is: the new
// generation did not take over and the old one keeps serving.
var ErrReloadFailed = errors.New("reload failed")

// ErrNeverReady is what Run's error Is when the first generation never
// had a ready worker after StartAttempts tries of one slot.
var ErrNeverReady = errors.New("no worker ever became ready")

// ErrNotDelivered says a reload request never reached the supervisor.
var ErrNotDelivered = errors.New("reload not started")

// ErrReloadInProgress is returned by Scale and upgrades while a reload
// runs; reloads themselves are queued instead.
var ErrReloadInProgress = errors.New("a reload is in progress")

// ErrStopping is returned by requests that arrive while baton stops.
var ErrStopping = errors.New("baton is stopping")

// ErrScaleLimit is returned by Scale beyond 1..max-workers.
var ErrScaleLimit = errors.New("scale limit")

// WorkerFailure describes how one worker failed: the facts an operator
// needs to start looking (which worker, how it ended, when, what it last
// said).
type WorkerFailure struct {
	Slot, Generation, PID int
	// How it ended: "exited with status 3", "killed by signal SIGSEGV",
	// "boot-timeout 1m0s expired (no READY=1 ...)".
	How string
	// When, relative to readiness: "before READY=1", "1.2s after READY=1".
	When string
	// LastLine is the last line it wrote to stdout or stderr, if baton
	// reads its output; Status its last STATUS=.
	LastLine, Status string
}

func (f *WorkerFailure) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "worker %d of generation %d (pid %d) %s", f.Slot, f.Generation, f.PID, f.How)
	if f.When != "" {
		b.WriteString(" " + f.When)
	}
	var said []string
	if f.LastLine != "" {
		said = append(said, "last output: "+strconv.Quote(f.LastLine))
	}
	if f.Status != "" {
		said = append(said, "last status: "+strconv.Quote(f.Status))
	}
	if len(said) > 0 {
		b.WriteString(" (" + strings.Join(said, "; ") + ")")
	}
	return b.String()
}

// ReloadError is a failed rollout.
type ReloadError struct {
	Generation, From int
	// Cause is a *WorkerFailure, or why the rollout could not go on.
	Cause error
}

func (e *ReloadError) Error() string {
	return fmt.Sprintf("reload to generation %d failed: %v; generation %d keeps serving", e.Generation, e.Cause, e.From)
}

func (e *ReloadError) Is(target error) bool { return target == ErrReloadFailed }
func (e *ReloadError) Unwrap() error        { return e.Cause }

// StartError is Run's error when the pool never became ready.
type StartError struct {
	Attempts int
	Last     *WorkerFailure
}

func (e *StartError) Error() string {
	return fmt.Sprintf("no worker ever became ready: %d attempts in a row failed, the last: %v", e.Attempts, e.Last)
}

func (e *StartError) Is(target error) bool { return target == ErrNeverReady }
func (e *StartError) Unwrap() error        { return e.Last }

// since renders an age for failure texts.
func since(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}
