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
	DefaultSettleTime      = 2 * time.Second
	// DefaultMaxWorkersFactor times workers is the scaling ceiling when
	// max-workers is not set.
	DefaultMaxWorkersFactor = 4
	DefaultSocketMode       = 0o666 // as systemd's SocketMode=
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

	// Environment is added to every worker's environment, KEY=VALUE, in
	// order, over what baton itself was given (as systemd's Environment=;
	// PYTHONUNBUFFERED=1 and the like without wrapping the command). It
	// changes with a reload. Zero: nothing added.
	Environment []string
	// MemoryMax is each worker's hard memory limit (the memory.max of
	// its cgroup): above it the kernel reclaims and then OOM-kills inside
	// the worker. It needs a delegated cgroup with the memory controller
	// (docs/containment.md). Zero: no limit.
	MemoryMax int64
	// CPUWeight is each worker's share of CPU time when the CPU is
	// contended (the cpu.weight of its cgroup, 1-10000, as systemd's
	// CPUWeight=). It needs a delegated cgroup with the cpu controller.
	// Zero: the kernel's default, 100.
	CPUWeight int

	// Surge is how many new workers may boot at once during a reload, beside
	// the ones they replace. Zero: 1.
	Surge int
	// SettleTime is how long a reload's new workers must stay up: the
	// canary before the rest roll, and every new worker after the last one
	// took its slot, before the reload is reported done. A new worker that
	// exits within it fails the reload. Zero: DefaultSettleTime; "0s"
	// (SettleTimeOff) turns it off.
	SettleTime time.Duration
	// MaxWorkers is the ceiling for scaling up (SIGTTIN, baton scale).
	// Zero: DefaultMaxWorkersFactor times Workers.
	MaxWorkers int
	// DrainDelay is how long a graceful stop keeps baton unready (STATUS=,
	// /readyz) before workers are told to stop, so that load balancers
	// and orchestrators stop sending traffic first. Zero: none.
	DrainDelay time.Duration

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
	// by names the flag or variable that overrode a key, for the same.
	by map[string]string
	// commandFromFlags is set when Command came from the command line, so
	// that errors about it point there, not at the file.
	commandFromFlags bool
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
