package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// file mirrors the TOML document. Keys are the flag names, so the file and
// the command line read the same. Every value with a syntax of its own is a
// TOML string here and parsed after decoding, with the key's position: the
// decoder would otherwise turn boot-timeout = 30 into 30 nanoseconds, and
// it loses positions for errors from custom types.
type file struct {
	Command         []string              `toml:"command"`
	Workers         *int                  `toml:"workers"`
	Readiness       *string               `toml:"readiness"`
	MinReady        *int                  `toml:"min-ready"`
	BootTimeout     *string               `toml:"boot-timeout"`
	GracefulTimeout *string               `toml:"graceful-timeout"`
	WatchdogTimeout *string               `toml:"watchdog-timeout"`
	RequestTimeout  *string               `toml:"request-timeout"`
	TimeoutSignal   *string               `toml:"timeout-signal"`
	TimeoutGrace    *string               `toml:"timeout-grace"`
	Surge           *int                  `toml:"surge"`
	SettleTime      *string               `toml:"settle-time"`
	MaxWorkers      *int                  `toml:"max-workers"`
	DrainDelay      *string               `toml:"drain-delay"`
	MaxLifetime     *string               `toml:"max-lifetime"`
	MaxMemory       *string               `toml:"max-memory"`
	MemoryMax       *string               `toml:"memory-max"`
	Environment     map[string]string     `toml:"environment"`
	CPUWeight       *int                  `toml:"cpu-weight"`
	MetricsSocket   *string               `toml:"metrics-socket"`
	WorkerControl   *bool                 `toml:"worker-control"`
	Sockets         map[string]fileSocket `toml:"sockets"`
}

type fileSocket struct {
	Listen  *string `toml:"listen"`
	Backlog *int    `toml:"backlog"`
	Mode    *string `toml:"mode"`
	Owner   string  `toml:"owner"`
	Group   string  `toml:"group"`
}

// Error is a config error with its position. Line is 0 when the error is
// about the file as a whole or came from a flag.
type Error struct {
	File         string
	Line, Column int
	Key          string
	Err          error
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d:%d: ", e.File, e.Line, e.Column)
	case e.File != "":
		fmt.Fprintf(&b, "%s: ", e.File)
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Load reads and validates a config file. Flags may be applied on top with
// Overrides.Apply before Finish; Load alone calls neither.
func Load(path string) (*Config, error) { return load(path, os.ReadFile) }

func load(path string, readFile func(string) ([]byte, error)) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, &Error{File: path, Err: fmt.Errorf("read config: %w", err)}
	}
	return parse(path, data)
}

func parse(path string, data []byte) (*Config, error) {
	var f file
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, decodeError(path, err)
	}
	pos := positions(data)
	at := func(key string, err error) error {
		p := pos[key]
		return &Error{File: path, Line: p.Line, Column: p.Column, Key: key, Err: err}
	}
	c := &Config{Path: path, Command: f.Command, pos: pos}
	if f.Command != nil && len(f.Command) == 0 {
		return nil, at("command", errors.New("must name a program"))
	}
	if f.Workers != nil {
		if *f.Workers < 1 {
			return nil, at("workers", fmt.Errorf("%d: must be at least 1", *f.Workers))
		}
		c.Workers = *f.Workers
	}
	if f.Readiness != nil {
		r, err := ParseReadiness(*f.Readiness)
		if err != nil {
			return nil, at("readiness", err)
		}
		c.Readiness = r
	}
	if f.MinReady != nil {
		if *f.MinReady < 1 {
			return nil, at("min-ready", fmt.Errorf("%d: must be at least 1 (leave it out to require all workers)", *f.MinReady))
		}
		c.MinReady = *f.MinReady
	}
	for _, d := range []struct {
		key string
		v   *string
		dst *time.Duration
	}{
		{"boot-timeout", f.BootTimeout, &c.BootTimeout},
		{"graceful-timeout", f.GracefulTimeout, &c.GracefulTimeout},
		{"watchdog-timeout", f.WatchdogTimeout, &c.WatchdogTimeout},
		{"request-timeout", f.RequestTimeout, &c.RequestTimeout},
		{"timeout-grace", f.TimeoutGrace, &c.TimeoutGrace},
		{"max-lifetime", f.MaxLifetime, &c.MaxLifetime},
	} {
		if d.v == nil {
			continue
		}
		v, err := ParseDuration(*d.v)
		if err != nil {
			return nil, at(d.key, err)
		}
		*d.dst = v
	}
	if f.MetricsSocket != nil {
		if err := checkName(*f.MetricsSocket); err != nil {
			return nil, at("metrics-socket", err)
		}
		c.MetricsSocket = *f.MetricsSocket
	}
	if f.WorkerControl != nil {
		c.WorkerControl = *f.WorkerControl
	}
	if f.MaxMemory != nil {
		n, err := ParseSize(*f.MaxMemory)
		if err != nil {
			return nil, at("max-memory", err)
		}
		c.MaxMemory = n
	}
	if len(f.Environment) > 0 {
		keys := make([]string, 0, len(f.Environment))
		for k := range f.Environment {
			keys = append(keys, k)
		}
		// In the order written, which the positions give.
		sort.Slice(keys, func(i, j int) bool {
			a, b := pos["environment."+keys[i]], pos["environment."+keys[j]]
			return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
		})
		for _, k := range keys {
			if err := checkEnvName(k); err != nil {
				return nil, at("environment."+k, err)
			}
			c.Environment = append(c.Environment, k+"="+f.Environment[k])
		}
	}
	if f.MemoryMax != nil {
		n, err := ParseSize(*f.MemoryMax)
		if err != nil {
			return nil, at("memory-max", err)
		}
		c.MemoryMax = n
	}
	if f.CPUWeight != nil {
		if err := checkCPUWeight(*f.CPUWeight); err != nil {
			return nil, at("cpu-weight", err)
		}
		c.CPUWeight = *f.CPUWeight
	}
	if f.Surge != nil {
		if *f.Surge < 1 {
			return nil, at("surge", fmt.Errorf("%d: must be at least 1", *f.Surge))
		}
		c.Surge = *f.Surge
	}
	if f.MaxWorkers != nil {
		if *f.MaxWorkers < 1 {
			return nil, at("max-workers", fmt.Errorf("%d: must be at least 1", *f.MaxWorkers))
		}
		c.MaxWorkers = *f.MaxWorkers
	}
	for _, d := range []struct {
		key string
		v   *string
		dst *time.Duration
	}{
		{"settle-time", f.SettleTime, &c.SettleTime},
		{"drain-delay", f.DrainDelay, &c.DrainDelay},
	} {
		if d.v == nil {
			continue
		}
		v, err := parseDurationOrZero(*d.v)
		if err != nil {
			return nil, at(d.key, err)
		}
		*d.dst = v
	}
	if f.TimeoutSignal != nil {
		sig, err := ParseSignal(*f.TimeoutSignal)
		if err != nil {
			return nil, at("timeout-signal", err)
		}
		c.TimeoutSignal = sig
	}
	for name, s := range f.Sockets {
		key := "sockets." + name
		if err := checkName(name); err != nil {
			return nil, at(key, err)
		}
		if s.Listen == nil {
			return nil, at(key, errors.New("missing listen"))
		}
		addr, err := ParseAddress(*s.Listen)
		if err != nil {
			return nil, at(key+".listen", err)
		}
		sock := Socket{Name: name, Address: addr, Owner: s.Owner, Group: s.Group, where: pos[key].String(path)}
		if s.Backlog != nil {
			if *s.Backlog < 1 {
				return nil, at(key+".backlog", fmt.Errorf("%d: must be at least 1", *s.Backlog))
			}
			sock.Backlog = *s.Backlog
		}
		if addr.Network != "unix" && (s.Mode != nil || s.Owner != "" || s.Group != "") {
			return nil, at(key, errors.New("mode, owner and group apply to unix sockets only"))
		}
		if s.Mode != nil {
			m, err := ParseMode(*s.Mode)
			if err != nil {
				return nil, at(key+".mode", err)
			}
			sock.Mode = m
		}
		c.Sockets = append(c.Sockets, sock)
	}
	// Workers see sockets in the order the file declares them.
	sort.SliceStable(c.Sockets, func(i, j int) bool {
		return pos["sockets."+c.Sockets[i].Name].Line < pos["sockets."+c.Sockets[j].Name].Line
	})
	return c, nil
}

func decodeError(path string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) && len(strict.Errors) > 0 {
		var errs []error
		for i := range strict.Errors {
			e := &strict.Errors[i]
			line, col := e.Position()
			errs = append(errs, &Error{File: path, Line: line, Column: col, Key: strings.Join(e.Key(), "."), Err: errors.New("unknown key")})
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		msg := friendlyType(strings.TrimPrefix(de.Error(), "toml: "))
		return &Error{File: path, Line: line, Column: col, Key: strings.Join(de.Key(), "."), Err: errors.New(msg)}
	}
	return &Error{File: path, Err: err}
}

var typeErrRE = regexp.MustCompile(`^cannot decode TOML (\w+) into struct field \S+ of type (\S+)$`)

// friendlyType rewrites the decoder's type errors, which name Go types, in
// the file's terms: "want an integer, not a string".
func friendlyType(msg string) string {
	m := typeErrRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	want := map[string]string{
		"int": "an integer", "string": "a string", "[]string": "an array of strings", "bool": "true or false",
	}[strings.TrimPrefix(m[2], "*")]
	if want == "" {
		want = "another type"
	}
	got := map[string]string{"integer": "an integer", "string": "a string", "float": "a float", "boolean": "a boolean", "array": "an array", "table": "a table", "datetime": "a date"}[m[1]]
	if got == "" {
		got = "a " + m[1]
	}
	return "want " + want + ", not " + got
}

type position struct{ Line, Column int }

func (p position) String(path string) string {
	if p.Line == 0 {
		return path
	}
	return fmt.Sprintf("%s:%d:%d", path, p.Line, p.Column)
}

// positions maps each dotted key (and table header) in a well-formed
// document to where it is written, for errors the decoder cannot see, such
// as one setting contradicting another, and for declaration order.
func positions(data []byte) map[string]position {
	out := map[string]position{}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		var parts []string
		var first *unstable.Node
		it := e.Key()
		for it.Next() {
			n := it.Node()
			if first == nil {
				first = n
			}
			parts = append(parts, string(n.Data))
		}
		if first == nil {
			continue
		}
		var at position
		if first.Raw.Length > 0 {
			s := p.Shape(first.Raw)
			at = position{s.Start.Line, s.Start.Column}
		}
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = parts
			key := strings.Join(parts, ".")
			if _, seen := out[key]; !seen {
				out[key] = at
			}
		case unstable.KeyValue:
			key := strings.Join(append(append([]string{}, table...), parts...), ".")
			out[key] = at
			// A dotted key such as sockets.web.listen = "..." also declares
			// its parent tables.
			for i := len(table) + 1; i < len(table)+len(parts); i++ {
				k := strings.Join(append(append([]string{}, table...), parts[:i-len(table)]...), ".")
				if _, seen := out[k]; !seen {
					out[k] = at
				}
			}
		}
	}
	return out
}

func checkName(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("socket name %q must be 1 to 255 characters", name)
	}
	for _, r := range name {
		// LISTEN_FDNAMES is colon-separated and systemd allows only
		// printable ASCII in fd names.
		if r <= ' ' || r > '~' || r == ':' {
			return fmt.Errorf("socket name %q: only printable ASCII without ':' or spaces", name)
		}
	}
	return nil
}
