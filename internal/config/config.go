package config

import (
	"os"
	"time"
)

// Defaults, used where a setting is left at its zero value.
const (
	DefaultWorkers         = 1
	DefaultBootTimeout     = 60 * time.Second
	DefaultGracefulTimeout = 30 * time.Second
	DefaultTimeoutGrace    = 5 * time.Second
	DefaultBacklog         = 4096
	DefaultSocketMode      = 0o666 // as systemd's SocketMode=
)

// Config is baton's validated configuration. The zero value of each field
// means "unset"; Finish replaces it with the documented default.
type Config struct {
	// Path is the file the config came from, empty when it came only from
	// flags. Reload re-reads it.
	Path string

	// Command is the worker's program and arguments. Required.
	Command []string
	// Workers is the number of worker processes. Zero: DefaultWorkers.
	Workers int
	// Readiness is when a worker counts as ready. Zero: ReadinessNotify.
	Readiness Readiness
	// MinReady is how many workers must be ready before baton tells systemd
	// READY=1 and reports the pool healthy. Zero: all of them.
	MinReady int
	// BootTimeout bounds spawn to READY=1. Zero: DefaultBootTimeout.
	BootTimeout time.Duration
	// GracefulTimeout bounds SIGTERM to exit when stopping a worker; then it
	// is SIGKILLed. Zero: DefaultGracefulTimeout.
	GracefulTimeout time.Duration

	// WatchdogTimeout is how long a worker may go without WATCHDOG=1 once
	// ready; workers get it as WATCHDOG_USEC. Zero: Infinity (no watchdog).
	WatchdogTimeout time.Duration
	// RequestTimeout bounds one request, for workers that report requests
	// (X_BATON_REQUEST_BEGIN/END). Zero: Infinity.
	RequestTimeout time.Duration
	// TimeoutSignal is sent first when a boot, watchdog or request clock
	// expires, so the worker can dump its stacks. Zero: SIGABRT.
	TimeoutSignal Signal
	// TimeoutGrace is the time between TimeoutSignal and SIGKILL. Zero:
	// DefaultTimeoutGrace.
	TimeoutGrace time.Duration

	// MaxLifetime recycles a worker (a ready replacement first) once it has
	// lived this long, less up to 10% jitter so workers do not recycle
	// together. Zero: Infinity.
	MaxLifetime time.Duration
	// MaxMemory recycles a worker whose resident memory exceeds it, less up
	// to 10% jitter. Zero: no limit.
	MaxMemory int64

	// Surge is how many new workers may boot at once during a reload, beside
	// the ones they replace. Zero: 1.
	Surge int

	// MetricsSocket names the socket (configured, or passed by systemd) on
	// which baton itself serves Prometheus metrics at /metrics; it is not
	// passed to workers. Empty: no metrics.
	MetricsSocket string

	// WorkerControl lets baton's own workers, and the processes they start,
	// use the control socket (reload, scale, status, upgrade). Zero
	// (false): they are refused, whatever their uid; see docs/security.md.
	WorkerControl bool

	// Sockets are the sockets baton binds when systemd did not pass them,
	// in declaration order, which is the order workers see them in.
	Sockets []Socket

	// pos records where each key was written, for errors found by Finish.
	pos map[string]position
}

// Socket is one named listening socket.
type Socket struct {
	// Name is what LISTEN_FDNAMES calls it and how sockets inherited from
	// systemd (FileDescriptorName=) are matched to the config.
	Name string
	// Address is where to listen.
	Address Address
	// Backlog is listen(2)'s backlog. Zero: DefaultBacklog (the kernel caps
	// it at net.core.somaxconn).
	Backlog int
	// Mode, Owner and Group apply to unix sockets only. Zero mode:
	// DefaultSocketMode. Empty owner or group: baton's own.
	Mode         os.FileMode
	Owner, Group string

	// where records the file position of the socket's table for errors.
	where string
}
