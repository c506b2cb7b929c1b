package sdbus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Infinity is how a property set to "infinity" comes back.
const Infinity = time.Duration(math.MaxInt64)

// Service is the subset of a service unit's properties baton checks itself
// against.
type Service struct {
	Unit                   string
	Type                   string
	TimeoutStop            time.Duration // TimeoutStopUSec
	Watchdog               time.Duration // WatchdogUSec; 0 when off
	FileDescriptorStoreMax uint32
	KillMode               string
	NotifyAccess           string
	ExecReload             bool // whether ExecReload= is set
	// Delegate says the unit delegates its cgroup subtree (Delegate=), so
	// baton may give each worker a cgroup of its own.
	Delegate bool
	// ProtectControlGroups makes the cgroup tree read-only to the service,
	// delegated subtree included.
	ProtectControlGroups bool
	// ReloadSignal is the signal Type=notify-reload sends; 0 when systemd
	// predates it (252).
	ReloadSignal int
	// ExitType is main or cgroup (ExitType=, systemd 250); "" when systemd
	// predates it. With cgroup, systemd waits for the workers to end when
	// baton dies before it restarts the service.
	ExitType string
	// SocketNames are the FileDescriptorName= of the .socket units that
	// trigger the service: the sockets systemd passes it.
	SocketNames []string
}

// Conn is a connection to one service manager.
type Conn struct{ c *sd.Conn }

// Connect connects to the manager a service in this environment runs under:
// the user manager when XDG_RUNTIME_DIR has its private socket (systemd
// sets XDG_RUNTIME_DIR for user services only), else the system manager.
func Connect(ctx context.Context) (*Conn, error) {
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" {
		path := filepath.Join(rt, "systemd", "private")
		if _, err := os.Stat(path); err == nil {
			return private(ctx, path)
		}
	}
	if c, err := private(ctx, "/run/systemd/private"); err == nil {
		return c, nil
	}
	c, err := sd.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd over D-Bus: %w", err)
	}
	return &Conn{c}, nil
}

func private(ctx context.Context, path string) (*Conn, error) {
	c, err := sd.NewConnection(func() (*dbus.Conn, error) {
		conn, err := dbus.Dial("unix:path="+path, dbus.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		// A private connection to systemd: EXTERNAL auth, no Hello, as
		// go-systemd's NewSystemdConnection does for /run/systemd/private.
		if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			return nil, errors.Join(err, conn.Close())
		}
		return conn, nil
	})
	if err != nil {
		return nil, fmt.Errorf("connect to systemd at %s: %w", path, err)
	}
	return &Conn{c}, nil
}

// Close closes the connection.
func (c *Conn) Close() { c.c.Close() }

// UnitOf returns the unit a process belongs to.
func (c *Conn) UnitOf(ctx context.Context, pid int) (string, error) {
	name, err := c.c.GetUnitNameByPID(ctx, uint32(pid))
	if err != nil {
		return "", fmt.Errorf("find unit of pid %d: %w", pid, err)
	}
	return name, nil
}

// Service reads a service unit's properties.
func (c *Conn) Service(ctx context.Context, unit string) (*Service, error) {
	props, err := c.c.GetUnitTypePropertiesContext(ctx, unit, "Service")
	if err != nil {
		return nil, fmt.Errorf("read properties of %s: %w", unit, err)
	}
	s := &Service{Unit: unit}
	s.Type, _ = props["Type"].(string)
	s.KillMode, _ = props["KillMode"].(string)
	s.NotifyAccess, _ = props["NotifyAccess"].(string)
	s.ExitType, _ = props["ExitType"].(string)
	s.FileDescriptorStoreMax, _ = props["FileDescriptorStoreMax"].(uint32)
	s.Delegate, _ = props["Delegate"].(bool)
	s.ProtectControlGroups, _ = props["ProtectControlGroups"].(bool)
	s.TimeoutStop = usec(props["TimeoutStopUSec"])
	s.Watchdog = usec(props["WatchdogUSec"])
	if v, ok := props["ReloadSignal"].(int32); ok {
		s.ReloadSignal = int(v)
	}
	if v, ok := props["ExecReload"].([][]any); ok {
		s.ExecReload = len(v) > 0
	}
	p, err := c.c.GetUnitPropertyContext(ctx, unit, "TriggeredBy")
	if err != nil {
		return nil, fmt.Errorf("read properties of %s: %w", unit, err)
	}
	triggers, _ := p.Value.Value().([]string)
	for _, t := range triggers {
		if filepath.Ext(t) != ".socket" {
			continue
		}
		sp, err := c.c.GetUnitTypePropertyContext(ctx, t, "Socket", "FileDescriptorName")
		if err != nil {
			return nil, fmt.Errorf("read properties of %s: %w", t, err)
		}
		if name, ok := sp.Value.Value().(string); ok {
			s.SocketNames = append(s.SocketNames, name)
		}
	}
	return s, nil
}

func usec(v any) time.Duration {
	u, ok := v.(uint64)
	if !ok {
		return 0
	}
	if u == math.MaxUint64 || u > uint64(math.MaxInt64/1000) {
		return Infinity
	}
	return time.Duration(u) * time.Microsecond
}
