package config

import (
	"errors"
	"fmt"
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
	maxLifetime     string
	maxMemory       string
	metricsSocket   string
	workerControl   bool
}

// BindFlags registers the settings' flags, named as in gunicorn where
// gunicorn has the setting.
func BindFlags(fs *pflag.FlagSet) *Flags {
	f := &Flags{fs: fs}
	fs.StringVarP(&f.configPath, "config", "c", "", "config `FILE` (TOML); flags override it")
	fs.IntVarP(&f.workers, "workers", "w", 0, fmt.Sprintf("number of worker processes (default %d)", DefaultWorkers))
	fs.StringArrayVarP(&f.binds, "bind", "b", nil, "socket to listen on, `[NAME=]ADDRESS`: tcp://127.0.0.1:8080, tcp://[::1]:8080, unix:///run/app.sock (repeatable; NAME defaults to web)")
	fs.StringVar(&f.readiness, "readiness", "", "when a worker is ready: notify (it sends READY=1) or exec (once started) (default notify)")
	fs.IntVar(&f.minReady, "min-ready", 0, "ready workers needed before baton reports READY=1 (default: all)")
	fs.StringVar(&f.bootTimeout, "boot-timeout", "", fmt.Sprintf("time from spawn to READY=1 before a worker is stopped (default %s)", DefaultBootTimeout))
	fs.StringVar(&f.gracefulTimeout, "graceful-timeout", "", fmt.Sprintf("time from SIGTERM to SIGKILL when a worker stops (default %s)", DefaultGracefulTimeout))
	fs.StringVar(&f.watchdogTimeout, "watchdog-timeout", "", "time a ready worker may go without WATCHDOG=1 before it is treated as hung (default infinity: off)")
	fs.StringVar(&f.requestTimeout, "request-timeout", "", "time one reported request may take (workers that send X_BATON_REQUEST_BEGIN/END) (default infinity: off)")
	fs.StringVar(&f.timeoutSignal, "timeout-signal", "", "signal sent first when a boot, watchdog or request clock expires (default SIGABRT)")
	fs.StringVar(&f.timeoutGrace, "timeout-grace", "", fmt.Sprintf("time from timeout-signal to SIGKILL (default %s)", DefaultTimeoutGrace))
	fs.IntVar(&f.surge, "surge", 0, "new workers booting at once during a reload or recycling (default 1)")
	fs.StringVar(&f.maxLifetime, "max-lifetime", "", "recycle a worker after this long, less up to 10% jitter (default infinity)")
	fs.StringVar(&f.metricsSocket, "metrics-socket", "", "serve Prometheus metrics on the socket of this `NAME` (not passed to workers)")
	fs.BoolVar(&f.workerControl, "worker-control", false, "let workers (and what they start) use the control socket (default false: refused)")
	fs.StringVar(&f.maxMemory, "max-memory", "", "recycle a worker whose resident memory exceeds this, e.g. 512MiB (default: no limit)")
	return f
}

// ConfigPath is the -c/--config value.
func (f *Flags) ConfigPath() string { return f.configPath }

// Resolve loads the config file if one was named, applies the flags that were
// set and the command (if non-empty), fills defaults and validates.
func (f *Flags) Resolve(command []string) (*Config, error) {
	c := &Config{}
	if f.configPath != "" {
		var err error
		if c, err = Load(f.configPath); err != nil {
			return nil, err
		}
	}
	if err := f.apply(c); err != nil {
		return nil, err
	}
	if len(command) > 0 {
		c.Command = command
	}
	if err := c.Finish(); err != nil {
		return nil, err
	}
	return c, nil
}

func flagError(name, value string, err error) error {
	return &Error{Key: "--" + name, Err: fmt.Errorf("%q: %w", value, err)}
}

func (f *Flags) apply(c *Config) error {
	changed := f.fs.Changed
	if changed("workers") {
		if f.workers < 1 {
			return flagError("workers", fmt.Sprint(f.workers), errors.New("must be at least 1"))
		}
		c.Workers = f.workers
	}
	if changed("min-ready") {
		if f.minReady < 1 {
			return flagError("min-ready", fmt.Sprint(f.minReady), errors.New("must be at least 1"))
		}
		c.MinReady = f.minReady
	}
	if changed("metrics-socket") {
		if err := checkName(f.metricsSocket); err != nil {
			return &Error{Key: "--metrics-socket", Err: err}
		}
		c.MetricsSocket = f.metricsSocket
	}
	if changed("worker-control") {
		c.WorkerControl = f.workerControl
	}
	if changed("max-memory") {
		n, err := ParseSize(f.maxMemory)
		if err != nil {
			return &Error{Key: "--max-memory", Err: err}
		}
		c.MaxMemory = n
	}
	if changed("surge") {
		if f.surge < 1 {
			return flagError("surge", fmt.Sprint(f.surge), errors.New("must be at least 1"))
		}
		c.Surge = f.surge
	}
	if changed("readiness") {
		r, err := ParseReadiness(f.readiness)
		if err != nil {
			return &Error{Key: "--readiness", Err: err}
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
			return &Error{Key: "--" + d.name, Err: err}
		}
		*d.dst = v
	}
	if changed("timeout-signal") {
		sig, err := ParseSignal(f.timeoutSignal)
		if err != nil {
			return &Error{Key: "--timeout-signal", Err: err}
		}
		c.TimeoutSignal = sig
	}
	for i, b := range f.binds {
		s, err := parseBind(b, i)
		if err != nil {
			return flagError("bind", b, err)
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
func parseBind(b string, i int) (Socket, error) {
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
	return Socket{Name: name, Address: a, where: "--bind " + b}, nil
}

// Finish fills defaults and checks what no single field can: run it once,
// after the file and the flags were applied.
func (c *Config) Finish() error {
	where := func(key string, err error) error {
		p := c.pos[key]
		return &Error{File: c.Path, Line: p.Line, Column: p.Column, Key: key, Err: err}
	}
	if len(c.Command) == 0 || c.Command[0] == "" {
		return where("command", errors.New("no worker command: give it after -- on the command line or as command = [...] in the config file"))
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
