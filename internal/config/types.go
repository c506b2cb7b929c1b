package config

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Infinity is the value of a duration set to "infinity": the clock is off.
const Infinity = time.Duration(math.MaxInt64)

// ParseDuration parses a duration setting as the file and flags spell it.
func ParseDuration(s string) (time.Duration, error) {
	if s == "infinity" {
		return Infinity, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (want e.g. \"30s\", \"1m30s\" or \"infinity\")", s)
	}
	if v <= 0 {
		return 0, fmt.Errorf("%q must be positive (use \"infinity\" to turn the clock off)", s)
	}
	return v, nil
}

// FormatDuration is the inverse of ParseDuration.
func FormatDuration(d time.Duration) string {
	if d == Infinity {
		return "infinity"
	}
	return d.String()
}

// ParseSize parses a memory size: bytes, or a number with K, M, G (powers
// of 1024, optionally written KiB, MiB, GiB).
func ParseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (want e.g. \"512MiB\" or \"2G\")", s)
	}
	return n * mult, nil
}

// MaxCPUWeight bounds cpu-weight, as systemd's CPUWeight= and the
// kernel's cpu.weight.
const MaxCPUWeight = 10000

func checkCPUWeight(w int) error {
	if w < 1 || w > MaxCPUWeight {
		return fmt.Errorf("%d: want 1 to %d (100 is the kernel's default share)", w, MaxCPUWeight)
	}
	return nil
}

// Readiness says when a worker counts as ready.
type Readiness string

const (
	// ReadinessNotify waits for the worker's READY=1, as systemd's Type=notify.
	ReadinessNotify Readiness = "notify"
	// ReadinessExec counts a worker ready once its command was executed, as
	// systemd's Type=exec, for programs that do not speak sd_notify.
	ReadinessExec Readiness = "exec"
)

// ParseReadiness accepts "notify" or "exec".
func ParseReadiness(s string) (Readiness, error) {
	switch v := Readiness(s); v {
	case ReadinessNotify, ReadinessExec:
		return v, nil
	}
	return "", fmt.Errorf("%q is not a readiness (want \"notify\" or \"exec\")", s)
}

// Address is where a socket listens: a TCP host:port or a unix socket path.
type Address struct {
	Network string // "tcp" or "unix"
	Addr    string // "127.0.0.1:8080", "[::1]:8080" or "/run/app.sock"
}

func (a Address) String() string {
	if a.Network == "unix" {
		return "unix://" + a.Addr
	}
	return "tcp://" + a.Addr
}

// ParseAddress parses "tcp://HOST:PORT", "unix:///path", or the gunicorn
// spellings "HOST:PORT" and "unix:/path". Host names are refused: a listening
// address that depends on DNS at boot is a classic outage.
func ParseAddress(s string) (Address, error) {
	switch {
	case strings.HasPrefix(s, "unix://"):
		return unixAddress(s, strings.TrimPrefix(s, "unix://"))
	case strings.HasPrefix(s, "unix:"):
		return unixAddress(s, strings.TrimPrefix(s, "unix:"))
	case strings.HasPrefix(s, "tcp://"):
		return tcpAddress(s, strings.TrimPrefix(s, "tcp://"))
	case strings.Contains(s, "://"):
		return Address{}, fmt.Errorf("address %q: unknown scheme (want tcp:// or unix://)", s)
	}
	return tcpAddress(s, s)
}

func unixAddress(orig, path string) (Address, error) {
	if !strings.HasPrefix(path, "/") {
		return Address{}, fmt.Errorf("address %q: unix socket path must be absolute", orig)
	}
	if len(path) > 107 {
		return Address{}, fmt.Errorf("address %q: unix socket path longer than 107 bytes", orig)
	}
	return Address{Network: "unix", Addr: path}, nil
}

func tcpAddress(orig, hostport string) (Address, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return Address{}, fmt.Errorf("address %q: want HOST:PORT ([::1]:PORT for IPv6): %v", orig, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return Address{}, fmt.Errorf("address %q: port %q is not a number from 0 to 65535", orig, port)
	}
	if host != "" {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return Address{}, fmt.Errorf("address %q: %q is not an IP address (host names are not resolved)", orig, host)
		}
		host = ip.String()
	}
	return Address{Network: "tcp", Addr: net.JoinHostPort(host, strconv.FormatUint(p, 10))}, nil
}

// ParseMode parses a unix socket's permission bits written as an octal
// string ("0660"), at most 0777.
func ParseMode(s string) (os.FileMode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("%q is not a mode (want octal such as \"0660\")", s)
	}
	return os.FileMode(v), nil
}

// Signal is a signal a worker can be sent: "SIGABRT", "ABRT" or a number.
type Signal syscall.Signal

var signalsByName = map[string]syscall.Signal{
	"SIGABRT": syscall.SIGABRT, "SIGQUIT": syscall.SIGQUIT, "SIGTERM": syscall.SIGTERM,
	"SIGINT": syscall.SIGINT, "SIGHUP": syscall.SIGHUP, "SIGUSR1": syscall.SIGUSR1,
	"SIGUSR2": syscall.SIGUSR2, "SIGKILL": syscall.SIGKILL, "SIGSEGV": syscall.SIGSEGV,
	"SIGBUS": syscall.SIGBUS, "SIGTRAP": syscall.SIGTRAP, "SIGSYS": syscall.SIGSYS,
	"SIGXCPU": syscall.SIGXCPU, "SIGWINCH": syscall.SIGWINCH,
}

// ParseSignal parses a signal name with or without SIG, or a number.
func ParseSignal(s string) (Signal, error) {
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig, ok := signalsByName[name]; ok {
		return Signal(sig), nil
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return Signal(n), nil
	}
	return 0, fmt.Errorf("%q is not a signal (want a name such as \"SIGABRT\")", s)
}

func (sg Signal) String() string {
	for name, v := range signalsByName {
		if v == syscall.Signal(sg) {
			return name
		}
	}
	return strconv.Itoa(int(sg))
}
