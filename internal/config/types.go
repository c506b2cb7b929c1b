package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
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

// Off is a duration set to zero explicitly ("0s"), for settings whose
// zero value means "the default": Finish turns it into 0.
const Off = time.Duration(-1)

// parseDurationOrZero is ParseDuration, but "0" and "0s" are allowed and
// give Off.
func parseDurationOrZero(s string) (time.Duration, error) {
	if v, err := time.ParseDuration(s); err == nil && v == 0 {
		return Off, nil
	}
	if s == "0" {
		return Off, nil
	}
	v, err := ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (want e.g. \"2s\", or \"0s\" for none)", s)
	}
	if v == Infinity {
		return 0, fmt.Errorf("%q: infinity is not allowed here", s)
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

// sizeUnits are the units of a size, all powers of 1024 as in systemd's
// MemoryMax= (systemd.resource-control(5)); matched case-insensitively.
// MB and GB mean MiB and GiB, as they do for Docker's --memory and for the
// memory ps(1) and top(1) report: a limit written either way is the same.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}

// MinSize is the smallest size ParseSize accepts: below it no worker
// could ever stay, and a bare number is most likely a forgotten unit.
const MinSize = 1 << 20

// ParseSize parses a memory size as max-memory takes it: a number,
// optionally with a decimal fraction, and a unit, K, M, G or T (also
// written KB, KiB, MB, MiB, ...), every one a power of 1024: "512M",
// "512MB" and "512MiB" are all 536870912 bytes, "1.5G" is 1610612736. A
// bare number, or one with B, is whole bytes. Space between number and
// unit is allowed; case is not significant. "infinity" is 0: no limit.
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "infinity" {
		return 0, nil
	}
	if in == "" {
		return 0, fmt.Errorf("%q is empty (want a size such as \"512M\" or \"2G\", or \"infinity\")", s)
	}
	i := strings.IndexFunc(in, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := in, ""
	if i >= 0 {
		num, unit = in[:i], strings.TrimSpace(in[i:])
	}
	if strings.HasPrefix(in, "-") {
		return 0, fmt.Errorf("%q is negative (want a positive size, or \"infinity\" for no limit)", s)
	}
	if strings.HasSuffix(unit, "%") {
		return 0, fmt.Errorf("%q: a share of RAM is not a size baton takes (want e.g. \"512M\"; systemd's MemoryMax= takes percentages for the whole service)", s)
	}
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if num == "" || strings.HasPrefix(num, ".") || strings.HasSuffix(num, ".") || strings.Count(num, ".") > 1 {
		return 0, fmt.Errorf("%q is not a size (want a number and a unit, such as \"512M\", \"1.5G\" or \"512MiB\")", s)
	}
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (want K, M, G or T, also written KB, KiB, MB, MiB, ...; all powers of 1024)", s, unit)
	}
	v, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("%q is not a size (want a number and a unit, such as \"512M\")", s)
	}
	v.Mul(v, new(big.Rat).SetInt64(mult))
	if mult == 1 && !v.IsInt() {
		return 0, fmt.Errorf("%q: a fraction of a byte (give a unit, such as \"1.5G\", or whole bytes)", s)
	}
	n := new(big.Int).Quo(v.Num(), v.Denom()) // whole bytes, rounded down
	switch {
	case v.Sign() == 0:
		return 0, fmt.Errorf("%q is zero (want a positive size, or \"infinity\" for no limit)", s)
	case !n.IsInt64() || n.Int64() > 1<<60:
		return 0, fmt.Errorf("%q is too large (at most 1048576T)", s)
	case n.Int64() < MinSize && mult == 1:
		return 0, fmt.Errorf("%q is %s bytes, less than any worker needs (a bare number is bytes: did you mean \"%sM\"?)", s, n, num)
	case n.Int64() < MinSize:
		return 0, fmt.Errorf("%q is less than 1M, less than any worker needs", s)
	}
	return n.Int64(), nil
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

// reservedEnv are the variables baton sets for each worker itself (the
// socket activation and notify protocols, the worker's identity): a
// setting cannot override them.
var reservedEnv = []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}

// ParseEnv checks one KEY=VALUE for the environment setting.
func ParseEnv(kv string) (string, error) {
	k, _, ok := strings.Cut(kv, "=")
	if !ok {
		return "", fmt.Errorf("%q: want KEY=VALUE", kv)
	}
	if err := checkEnvName(k); err != nil {
		return "", err
	}
	return kv, nil
}

func checkEnvName(k string) error {
	if k == "" {
		return errors.New("empty variable name")
	}
	for i, r := range k {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return fmt.Errorf("%q is not a variable name (letters, digits and _, not starting with a digit)", k)
		}
	}
	for _, r := range reservedEnv {
		if k == r {
			return fmt.Errorf("%s is set by baton for each worker (the socket activation and notify protocols)", k)
		}
	}
	if strings.HasPrefix(k, "BATON_") {
		return fmt.Errorf("%s: BATON_ variables are baton's own", k)
	}
	return nil
}
