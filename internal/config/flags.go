package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

// Flags are the command-line spellings of the settings. Register them on a
// FlagSet with BindFlags, parse, then Resolve: flags override the file.
type Flags struct {
	fs              *pflag.FlagSet
	configPath      string
	workers         int
	binds           []string
	readiness       string
	minReady        int
	bootTimeout     string
	gracefulTimeout string
	watchdogTimeout string
	requestTimeout  string
	timeoutSignal   string
	timeoutGrace    string
	surge           int
	settleTime      string
	maxWorkers      int
	drainDelay      string
	maxLifetime     string
	maxMemory       string
	memoryMax       string
	env             []string
	cpuWeight       int
	metricsSocket   string
	workerControl   bool
	// fromEnv maps the flags ApplyEnv set to their variables.
	fromEnv map[string]string
	// ReadFile reads the config file, by the name --config gives. Zero:
	// os.ReadFile. baton check --kubernetes reads it from a ConfigMap.
	ReadFile func(name string) ([]byte, error)
}

// BindFlags registers the settings' flags, named as in gunicorn where
// gunicorn has the setting.
func BindFlags(fs *pflag.FlagSet) *Flags {
	f := &Flags{fs: fs}
	fs.StringVarP(&f.configPath, "config", "c", "", "config `FILE` (TOML); flags override it")
	fs.IntVarP(&f.workers, "workers", "w", 0, fmt.Sprintf("`N` worker processes (default %d)", DefaultWorkers))
	fs.StringArrayVarP(&f.binds, "bind", "b", nil, "socket to listen on, `[NAME=]ADDRESS`: tcp://127.0.0.1:8080, tcp://[::1]:8080, unix:///run/app.sock (repeatable; NAME defaults to web)")
	fs.StringVar(&f.readiness, "readiness", "", "when a worker is ready, `MODE` notify (at its READY=1) or exec (once executed) (default notify)")
	fs.IntVar(&f.minReady, "min-ready", 0, "`N` ready workers before baton reports READY=1 (default: all)")
	fs.StringVar(&f.bootTimeout, "boot-timeout", "", fmt.Sprintf("`DURATION` from spawn to READY=1, else the worker is stopped (default %s)", FormatDuration(DefaultBootTimeout)))
	fs.StringVar(&f.gracefulTimeout, "graceful-timeout", "", fmt.Sprintf("`DURATION` from SIGTERM to SIGKILL when a worker stops (default %s)", FormatDuration(DefaultGracefulTimeout)))
	fs.StringVar(&f.watchdogTimeout, "watchdog-timeout", "", "`DURATION` a ready worker may go without WATCHDOG=1 before it counts as hung (default infinity: off)")
	fs.StringVar(&f.requestTimeout, "request-timeout", "", "`DURATION` one request may take, for workers that report them (X_BATON_REQUEST_BEGIN/END) (default infinity: off)")
	fs.StringVar(&f.timeoutSignal, "timeout-signal", "", "`SIGNAL` sent first when a boot, watchdog or request clock expires (default SIGABRT)")
	fs.StringVar(&f.timeoutGrace, "timeout-grace", "", fmt.Sprintf("`DURATION` from timeout-signal to SIGKILL (default %s)", FormatDuration(DefaultTimeoutGrace)))
	fs.IntVar(&f.surge, "surge", 0, "`N` replacements booting at once in a reload or recycling (default 1)")
	fs.StringVar(&f.settleTime, "settle-time", "", fmt.Sprintf("`DURATION` a reload's new workers must stay up: the canary before the rest roll, and all of them at the end; a new worker that exits within it fails the reload; 0s for none (default %s)", FormatDuration(DefaultSettleTime)))
	fs.IntVar(&f.maxWorkers, "max-workers", 0, fmt.Sprintf("at most `N` workers when scaling up (SIGTTIN) (default %d times --workers)", DefaultMaxWorkersFactor))
	fs.StringVar(&f.drainDelay, "drain-delay", "", "on a graceful stop, `DURATION` baton stays up but unready (STATUS=, /readyz) before workers are told to stop (default 0s)")
	fs.StringVar(&f.maxLifetime, "max-lifetime", "", "recycle a worker after this `DURATION`, less up to 10% jitter (default infinity: never)")
	fs.StringVar(&f.metricsSocket, "metrics-socket", "", "serve Prometheus metrics on the socket of this `NAME` (not passed to workers)")
	fs.BoolVar(&f.workerControl, "worker-control", false, "let workers (and what they start) use the control socket (default false: refused)")
	fs.StringVar(&f.maxMemory, "max-memory", "", "recycle a worker whose resident memory exceeds `SIZE`, less up to 10% jitter: a number and K, M, G or T, each a power of 1024 as in systemd's MemoryMax= (512M, 512MB and 512MiB are all 536870912 bytes; 1.5G works); a bare number is bytes (default infinity: no limit)")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "add `KEY=VALUE` to every worker's environment (repeatable; over the config file's [environment])")
	fs.StringVar(&f.memoryMax, "memory-max", "", "hard memory limit of each worker, `SIZE` as for --max-memory (its cgroup's memory.max); needs a delegated cgroup (default: no limit)")
	fs.IntVar(&f.cpuWeight, "cpu-weight", 0, "CPU share `N` of each worker when the CPU is contended, 1-10000 (its cgroup's cpu.weight); needs a delegated cgroup (default 100)")
	return f
}

// ConfigPath is the -c/--config value.
func (f *Flags) ConfigPath() string { return f.configPath }

// Resolve loads the config file if one was named, applies the flags that were
// set and the command (if non-empty), fills defaults and validates.
func (f *Flags) Resolve(command []string) (*Config, error) {
	c := &Config{}
	if f.configPath != "" {
		read := f.ReadFile
		if read == nil {
			read = os.ReadFile
		}
		var err error
		if c, err = load(f.configPath, read); err != nil {
			return nil, err
		}
	}
	if err := f.apply(c); err != nil {
		return nil, err
	}
	if len(command) > 0 {
		c.Command, c.commandFromFlags = command, true
	}
	if err := c.Finish(); err != nil {
		return nil, err
	}
	return c, nil
}

func (f *Flags) flagError(name, value string, err error) error {
	return &Error{Key: f.key(name), Err: fmt.Errorf("%q: %w", value, err)}
}

func (f *Flags) apply(c *Config) error {
	// Keys are the flag names; an error Finish finds in a setting the
	// command line or the environment gave names that source.
	changed := func(name string) bool {
		if !f.fs.Changed(name) {
			return false
		}
		if c.by == nil {
			c.by = map[string]string{}
		}
		c.by[name] = f.key(name)
		return true
	}
	if changed("workers") {
		if f.workers < 1 {
			return f.flagError("workers", fmt.Sprint(f.workers), errors.New("must be at least 1"))
		}
		c.Workers = f.workers
	}
	if changed("min-ready") {
		if f.minReady < 1 {
			return f.flagError("min-ready", fmt.Sprint(f.minReady), errors.New("must be at least 1"))
		}
		c.MinReady = f.minReady
	}
	if changed("metrics-socket") {
		if err := checkName(f.metricsSocket); err != nil {
			return &Error{Key: f.key("metrics-socket"), Err: err}
		}
		c.MetricsSocket = f.metricsSocket
	}
	if changed("worker-control") {
		c.WorkerControl = f.workerControl
	}
	if changed("max-memory") {
		n, err := ParseSize(f.maxMemory)
		if err != nil {
			return &Error{Key: f.key("max-memory"), Err: err}
		}
		c.MaxMemory = n
	}
	for _, kv := range f.env {
		if _, err := ParseEnv(kv); err != nil {
			return &Error{Key: "--env", Err: err}
		}
		c.Environment = append(c.Environment, kv)
	}
	if changed("memory-max") {
		n, err := ParseSize(f.memoryMax)
		if err != nil {
			return &Error{Key: "--memory-max", Err: err}
		}
		c.MemoryMax = n
	}
	if changed("cpu-weight") {
		if err := checkCPUWeight(f.cpuWeight); err != nil {
			return &Error{Key: "--cpu-weight", Err: err}
		}
		c.CPUWeight = f.cpuWeight
	}
	if changed("surge") {
		if f.surge < 1 {
			return f.flagError("surge", fmt.Sprint(f.surge), errors.New("must be at least 1"))
		}
		c.Surge = f.surge
	}
	if changed("max-workers") {
		if f.maxWorkers < 1 {
			return f.flagError("max-workers", fmt.Sprint(f.maxWorkers), errors.New("must be at least 1"))
		}
		c.MaxWorkers = f.maxWorkers
	}
	for _, d := range []struct {
		name, value string
		dst         *time.Duration
	}{
		{"settle-time", f.settleTime, &c.SettleTime},
		{"drain-delay", f.drainDelay, &c.DrainDelay},
	} {
		if !changed(d.name) {
			continue
		}
		v, err := parseDurationOrZero(d.value)
		if err != nil {
			return &Error{Key: f.key(d.name), Err: err}
		}
		*d.dst = v
	}
	if changed("readiness") {
		r, err := ParseReadiness(f.readiness)
		if err != nil {
			return &Error{Key: f.key("readiness"), Err: err}
		}
		c.Readiness = r
	}
	for _, d := range []struct {
		name, value string
		dst         *time.Duration
	}{
		{"boot-timeout", f.bootTimeout, &c.BootTimeout},
		{"graceful-timeout", f.gracefulTimeout, &c.GracefulTimeout},
		{"watchdog-timeout", f.watchdogTimeout, &c.WatchdogTimeout},
		{"request-timeout", f.requestTimeout, &c.RequestTimeout},
		{"timeout-grace", f.timeoutGrace, &c.TimeoutGrace},
		{"max-lifetime", f.maxLifetime, &c.MaxLifetime},
	} {
		if !changed(d.name) {
			continue
		}
		v, err := ParseDuration(d.value)
		if err != nil {
			return &Error{Key: f.key(d.name), Err: err}
		}
		*d.dst = v
	}
	if changed("timeout-signal") {
		sig, err := ParseSignal(f.timeoutSignal)
		if err != nil {
			return &Error{Key: f.key("timeout-signal"), Err: err}
		}
		c.TimeoutSignal = sig
	}
	for i, b := range f.binds {
		s, err := parseBind(b, i, f.key("bind"))
		if err != nil {
			return f.flagError("bind", b, err)
		}
		replaced := false
		for j := range c.Sockets {
			if c.Sockets[j].Name == s.Name {
				// Keep the file's backlog and permissions; the flag moves it.
				if c.Sockets[j].Address.Network != s.Address.Network {
					c.Sockets[j].Mode, c.Sockets[j].Owner, c.Sockets[j].Group = 0, "", ""
				}
				c.Sockets[j].Address, c.Sockets[j].where = s.Address, s.where
				replaced = true
			}
		}
		if !replaced {
			c.Sockets = append(c.Sockets, s)
		}
	}
	return nil
}

// parseBind parses NAME=ADDRESS or a bare ADDRESS, which is named "web" (the
// first) or "web-N".
func parseBind(b string, i int, source string) (Socket, error) {
	name, addr, ok := strings.Cut(b, "=")
	if !ok {
		name, addr = "web", b
		if i > 0 {
			name = fmt.Sprintf("web-%d", i+1)
		}
	}
	if err := checkName(name); err != nil {
		return Socket{}, err
	}
	a, err := ParseAddress(addr)
	if err != nil {
		return Socket{}, err
	}
	return Socket{Name: name, Address: a, where: source + " " + b}, nil
}

// Finish fills defaults and checks what no single field can: run it once,
// after the file and the flags were applied.
func (c *Config) Finish() error {
	where := func(key string, err error) error {
		if by := c.by[key]; by != "" {
			return &Error{Key: by, Err: err}
		}
		p := c.pos[key]
		return &Error{File: c.Path, Line: p.Line, Column: p.Column, Key: key, Err: err}
	}
	if len(c.Command) == 0 || c.Command[0] == "" {
		return where("command", errNoCommand)
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.Readiness == "" {
		c.Readiness = ReadinessNotify
	}
	if c.MinReady == 0 {
		c.MinReady = c.Workers
	}
	if c.MinReady > c.Workers {
		return where("min-ready", fmt.Errorf("%d is more than the %d workers", c.MinReady, c.Workers))
	}
	if c.BootTimeout == 0 {
		c.BootTimeout = DefaultBootTimeout
	}
	if c.GracefulTimeout == 0 {
		c.GracefulTimeout = DefaultGracefulTimeout
	}
	if c.Surge == 0 {
		c.Surge = 1
	}
	switch c.SettleTime {
	case 0:
		c.SettleTime = DefaultSettleTime
	case Off:
		c.SettleTime = 0
	}
	if c.DrainDelay == Off {
		c.DrainDelay = 0
	}
	if c.MaxWorkers == 0 {
		c.MaxWorkers = DefaultMaxWorkersFactor * c.Workers
	}
	if c.MaxWorkers < c.Workers {
		return where("max-workers", fmt.Errorf("%d is fewer than the %d workers", c.MaxWorkers, c.Workers))
	}
	if c.MaxLifetime == 0 {
		c.MaxLifetime = Infinity
	}
	if c.WatchdogTimeout == 0 {
		c.WatchdogTimeout = Infinity
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = Infinity
	}
	if c.TimeoutSignal == 0 {
		c.TimeoutSignal = Signal(syscall.SIGABRT)
	}
	if c.TimeoutSignal == Signal(syscall.SIGKILL) {
		return where("timeout-signal", errors.New("SIGKILL leaves nothing to diagnose; pick a signal the worker can act on, such as SIGABRT"))
	}
	if c.TimeoutGrace == 0 {
		c.TimeoutGrace = DefaultTimeoutGrace
	}
	if c.TimeoutGrace == Infinity {
		return where("timeout-grace", errors.New("infinity would let a hung worker live forever after its clock expired"))
	}
	if c.GracefulTimeout != Infinity && c.TimeoutGrace > c.GracefulTimeout {
		return where("timeout-grace", fmt.Errorf("%s is longer than graceful-timeout %s, the stop budget it has to fit in", FormatDuration(c.TimeoutGrace), FormatDuration(c.GracefulTimeout)))
	}
	if c.WatchdogTimeout != Infinity && c.WatchdogTimeout < time.Millisecond {
		return where("watchdog-timeout", fmt.Errorf("%s is below the 1ms a worker could ever meet", c.WatchdogTimeout))
	}
	if c.MemoryMax > 0 && c.MaxMemory > c.MemoryMax {
		return where("max-memory", fmt.Errorf("%s is above memory-max %s: the kernel would OOM-kill inside a worker before baton recycles it; set max-memory below memory-max", sizeString(c.MaxMemory), sizeString(c.MemoryMax)))
	}
	seen := map[string]string{}
	addrs := map[Address]string{}
	for i := range c.Sockets {
		s := &c.Sockets[i]
		if prev, dup := seen[s.Name]; dup {
			return c.socketError(s, fmt.Errorf("socket %q is already defined at %s", s.Name, prev))
		}
		seen[s.Name] = s.where
		if prev, dup := addrs[s.Address]; dup {
			return c.socketError(s, fmt.Errorf("address %s is already used at %s", s.Address, prev))
		}
		addrs[s.Address] = s.where
		if s.Backlog == 0 {
			s.Backlog = DefaultBacklog
		}
		if s.Address.Network == "unix" && s.Mode == 0 {
			s.Mode = DefaultSocketMode
		}
	}
	return nil
}

// socketError is an error about socket s: at its table in the file, or
// named by the flag that set it.
func (c *Config) socketError(s *Socket, err error) error {
	key := "sockets." + s.Name
	if p, ok := c.pos[key]; ok && p.Line > 0 && s.where == p.String(c.Path) {
		return &Error{File: c.Path, Line: p.Line, Column: p.Column, Key: key, Err: err}
	}
	return &Error{Key: s.where, Err: err}
}

// sizeString writes a size in the largest binary unit that divides it.
func sizeString(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return fmt.Sprintf("%d%s", n/u.mult, u.suffix)
		}
	}
	return fmt.Sprintf("%dB", n)
}
