package activation

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/unixsock"
	"golang.org/x/sys/unix"
)

// Bind creates, binds and listens on one configured socket. The fd is
// blocking, as systemd passes them; workers choose their own mode.
func Bind(c config.Socket) (*Socket, error) {
	var (
		fd  int
		err error
	)
	switch c.Address.Network {
	case "tcp":
		fd, err = bindTCP(c.Address.Addr, c.Backlog)
	case "unix":
		fd, err = bindUnix(c)
	default:
		err = fmt.Errorf("unknown network %q", c.Address.Network)
	}
	if err != nil {
		return nil, fmt.Errorf("bind socket %s to %s: %w", c.Name, c.Address, err)
	}
	addr, err := describe(fd)
	if err != nil {
		addr = c.Address.String()
	}
	return &Socket{Name: c.Name, Addr: addr, Origin: Bound, File: os.NewFile(uintptr(fd), c.Name)}, nil
}

func bindTCP(hostport string, backlog int) (int, error) {
	ap, err := netip.ParseAddrPort(hostport)
	var sa unix.Sockaddr
	family := unix.AF_INET6
	switch {
	case err == nil && ap.Addr().Is4():
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	case err == nil:
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	default:
		// ":PORT": every address, dual-stack where the kernel allows it.
		_, port, perr := splitPort(hostport)
		if perr != nil {
			return -1, perr
		}
		sa = &unix.SockaddrInet6{Port: port}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil && family == unix.AF_INET6 && sa.(*unix.SockaddrInet6).Addr == [16]byte{} {
		// No IPv6 at all: fall back to every IPv4 address.
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: sa.(*unix.SockaddrInet6).Port}
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	// SO_REUSEADDR lets a restarted baton bind while old connections sit in
	// TIME_WAIT, as every server (and systemd's ReuseAddress= default) does.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return -1, errors.Join(fmt.Errorf("SO_REUSEADDR: %w", err), unix.Close(fd))
	}
	if err := unix.Bind(fd, sa); err != nil {
		return -1, errors.Join(err, unix.Close(fd))
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return -1, errors.Join(fmt.Errorf("listen: %w", err), unix.Close(fd))
	}
	return fd, nil
}

func splitPort(hostport string) (string, int, error) {
	i := len(hostport) - 1
	for i >= 0 && hostport[i] != ':' {
		i--
	}
	port, err := strconv.Atoi(hostport[i+1:])
	if i < 0 || err != nil {
		return "", 0, fmt.Errorf("bad host:port %q", hostport)
	}
	return hostport[:i], port, nil
}

func bindUnix(c config.Socket) (int, error) {
	path := c.Address.Addr
	uid, gid, err := owner(c.Owner, c.Group)
	if err != nil {
		return -1, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return -1, err
	}
	// A socket file left by a run that died is stale and replaced; one that
	// a live process listens on (another baton, the application run by
	// hand) is never taken over, and anything else at the path is not ours
	// to delete.
	if err := unixsock.RemoveStale(path); err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fail := func(err error) (int, error) { return -1, errors.Join(err, unix.Close(fd)) }
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return fail(err)
	}
	// chmod/chown before listen(2), so no client connects through looser
	// permissions in between.
	if err := os.Chmod(path, os.FileMode(c.Mode)); err != nil {
		return fail(err)
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Lchown(path, uid, gid); err != nil {
			return fail(err)
		}
	}
	if err := unix.Listen(fd, c.Backlog); err != nil {
		return fail(fmt.Errorf("listen: %w", err))
	}
	return fd, nil
}

// owner resolves user and group names (or numbers); -1 leaves one unchanged.
func owner(u, g string) (int, int, error) {
	uid, gid := -1, -1
	if u != "" {
		if n, err := strconv.Atoi(u); err == nil {
			uid = n
		} else {
			usr, err := user.Lookup(u)
			if err != nil {
				return -1, -1, fmt.Errorf("owner %q: %w", u, err)
			}
			uid, _ = strconv.Atoi(usr.Uid)
		}
	}
	if g != "" {
		if n, err := strconv.Atoi(g); err == nil {
			gid = n
		} else {
			grp, err := user.LookupGroup(g)
			if err != nil {
				return -1, -1, fmt.Errorf("group %q: %w", g, err)
			}
			gid, _ = strconv.Atoi(grp.Gid)
		}
	}
	return uid, gid, nil
}
