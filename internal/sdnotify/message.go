package sdnotify

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxMessageSize is the largest datagram accepted, as systemd's
// NOTIFY_BUFFER_MAX: larger ones are dropped whole, never truncated, so that
// half a message is never acted on.
const MaxMessageSize = 4096

// Message is one parsed notification. Fields a sender did not set are zero;
// the pointers distinguish "absent" from "zero" where systemd does too.
type Message struct {
	Ready     bool // READY=1
	Reloading bool // RELOADING=1
	Stopping  bool // STOPPING=1
	Watchdog  bool // WATCHDOG=1
	// WatchdogTrigger is WATCHDOG=trigger: the sender asks to be treated as
	// hung at once.
	WatchdogTrigger bool
	Barrier         bool // BARRIER=1: close the attached fd once processed
	FDStore         bool // FDSTORE=1
	FDStoreRemove   bool // FDSTOREREMOVE=1

	Status            *string        // STATUS=
	MainPID           *int           // MAINPID=
	Errno             *int           // ERRNO=
	WatchdogUSec      *time.Duration // WATCHDOG_USEC=
	ExtendTimeoutUSec *time.Duration // EXTEND_TIMEOUT_USEC=
	MonotonicUSec     *uint64        // MONOTONIC_USEC=
	FDName            *string        // FDNAME=

	// Extra holds the X_ extension fields and any field this package does not
	// interpret, in order, so later features can act on them.
	Extra []Field
}

// Field is one KEY=VALUE pair.
type Field struct{ Key, Value string }

// Get returns the last value of an Extra field, as systemd lets a later
// assignment win.
func (m *Message) Get(key string) (string, bool) {
	for i := len(m.Extra) - 1; i >= 0; i-- {
		if m.Extra[i].Key == key {
			return m.Extra[i].Value, true
		}
	}
	return "", false
}

// ErrEmpty is returned for a datagram with no assignments at all.
var ErrEmpty = errors.New("empty notification")

// Parse parses one datagram. It is strict where acting on a misread value
// would do harm (READY=yes is not READY=1, MAINPID=abc is an error) and lenient
// where systemd is (unknown keys are kept, a trailing newline is fine).
func Parse(b []byte) (*Message, error) {
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("notification of %d bytes exceeds %d", len(b), MaxMessageSize)
	}
	if !utf8.Valid(b) {
		return nil, errors.New("notification is not valid UTF-8")
	}
	m := &Message{}
	n := 0
	for i, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("line %d: %q is not KEY=VALUE", i+1, truncate(line))
		}
		if strings.ContainsRune(line, 0) {
			return nil, fmt.Errorf("line %d: NUL byte in %s", i+1, key)
		}
		if err := m.set(key, value); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		n++
	}
	if n == 0 {
		return nil, ErrEmpty
	}
	return m, nil
}

func (m *Message) set(key, value string) error {
	switch key {
	case "READY":
		return flag(key, value, &m.Ready)
	case "RELOADING":
		return flag(key, value, &m.Reloading)
	case "STOPPING":
		return flag(key, value, &m.Stopping)
	case "BARRIER":
		return flag(key, value, &m.Barrier)
	case "FDSTORE":
		return flag(key, value, &m.FDStore)
	case "FDSTOREREMOVE":
		return flag(key, value, &m.FDStoreRemove)
	case "WATCHDOG":
		switch value {
		case "1":
			m.Watchdog = true
		case "trigger":
			m.WatchdogTrigger = true
		default:
			return fmt.Errorf("WATCHDOG=%q: want 1 or trigger", truncate(value))
		}
	case "STATUS":
		m.Status = &value
	case "FDNAME":
		m.FDName = &value
	case "MAINPID":
		pid, err := strconv.Atoi(value)
		if err != nil || pid <= 0 {
			return fmt.Errorf("MAINPID=%q: want a positive pid", truncate(value))
		}
		m.MainPID = &pid
	case "ERRNO":
		e, err := strconv.Atoi(value)
		if err != nil || e < 0 {
			return fmt.Errorf("ERRNO=%q: want a non-negative errno", truncate(value))
		}
		m.Errno = &e
	case "WATCHDOG_USEC", "EXTEND_TIMEOUT_USEC":
		us, err := strconv.ParseUint(value, 10, 63)
		if err != nil || us == 0 || us > uint64(1<<63-1)/1000 {
			return fmt.Errorf("%s=%q: want a positive count of microseconds", key, truncate(value))
		}
		d := time.Duration(us) * time.Microsecond
		if key == "WATCHDOG_USEC" {
			m.WatchdogUSec = &d
		} else {
			m.ExtendTimeoutUSec = &d
		}
	case "MONOTONIC_USEC":
		us, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return fmt.Errorf("MONOTONIC_USEC=%q: want microseconds", truncate(value))
		}
		m.MonotonicUSec = &us
	default:
		m.Extra = append(m.Extra, Field{Key: key, Value: value})
	}
	return nil
}

// flag accepts only "1", as systemd does for these fields; anything else is
// an error rather than a silent no-op, so a typo shows up in baton's log.
func flag(key, value string, dst *bool) error {
	if value != "1" {
		return fmt.Errorf("%s=%q: want 1", key, truncate(value))
	}
	*dst = true
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
