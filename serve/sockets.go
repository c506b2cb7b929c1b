package serve

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// listenFDsStart is SD_LISTEN_FDS_START: passed sockets begin at fd 3.
const listenFDsStart = 3

// maxListenFDs bounds LISTEN_FDS so a corrupt value cannot make the
// program claim thousands of fds it does not own.
const maxListenFDs = 1024

// Socket is one socket the service manager passed.
type Socket struct {
	Name string // from LISTEN_FDNAMES; "unknown" when unnamed
	// File is the fd, close-on-exec; nil once the socket was taken as a
	// listener, which owns it from then on.
	File *os.File
}

// SocketSet is what the service manager passed, taken once per process.
type SocketSet struct {
	sockets []Socket
	// none says why there are no sockets, for error messages.
	none string
	mu   sync.Mutex
	// listeners caches Listener conversions, so that asking twice gives
	// the same listener rather than a second copy of the socket.
	listeners map[int]net.Listener
}

// ErrNoSocket is wrapped by every error about a socket that was not passed.
var ErrNoSocket = errors.New("socket not passed")

var (
	takeOnce sync.Once
	taken    *SocketSet
	takeErr  error
)

// Sockets returns the sockets the service manager (systemd, baton) passed,
// as sd_listen_fds_with_names(3) with unset_environment set: LISTEN_FDS
// counts the fds from 3, LISTEN_FDNAMES names them, and they are this
// process's only if LISTEN_PID is its pid. The variables are unset on the
// first call, so that child processes do not take the sockets for theirs,
// and the fds are marked close-on-exec; later calls return the same set.
// No sockets passed is not an error: the set is empty, and asking it for a
// name says why.
func Sockets() (*SocketSet, error) {
	takeOnce.Do(func() {
		taken, takeErr = takeSockets(os.LookupEnv, os.Getpid())
		for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
			if err := os.Unsetenv(v); err != nil && takeErr == nil {
				takeErr = fmt.Errorf("unset %s: %w", v, err)
			}
		}
	})
	return taken, takeErr
}

// takeSockets reads the variables and claims the fds. Like sd_listen_fds,
// it ignores the fds when LISTEN_PID is not this process (they were meant
// for another one and are not ours to close), but malformed values are
// errors, since serving on a misread socket set is worse than not starting.
func takeSockets(lookup func(string) (string, bool), pid int) (*SocketSet, error) {
	count, ok := lookup("LISTEN_FDS")
	if !ok {
		return &SocketSet{none: "no sockets were passed (LISTEN_FDS is not set)"}, nil
	}
	pidStr, ok := lookup("LISTEN_PID")
	if !ok {
		return &SocketSet{none: "LISTEN_FDS=" + count + " is set but LISTEN_PID is not, so the sockets are not this process's"}, nil
	}
	if p, err := strconv.Atoi(pidStr); err != nil || p <= 0 {
		return nil, fmt.Errorf("socket activation: LISTEN_PID=%q: not a pid", pidStr)
	} else if p != pid {
		return &SocketSet{none: fmt.Sprintf("LISTEN_FDS=%s was passed to pid %d, this is pid %d", count, p, pid)}, nil
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 0 || n > maxListenFDs {
		return nil, fmt.Errorf("socket activation: LISTEN_FDS=%q: want a count from 0 to %d", count, maxListenFDs)
	}
	names := make([]string, n)
	if v, ok := lookup("LISTEN_FDNAMES"); ok && n > 0 {
		got := strings.Split(v, ":")
		if len(got) != n {
			return nil, fmt.Errorf("socket activation: LISTEN_FDNAMES=%q: %d names for LISTEN_FDS=%d", v, len(got), n)
		}
		copy(names, got)
	}
	for i := range names {
		if names[i] == "" {
			names[i] = "unknown" // as sd_listen_fds_with_names(3)
		}
	}
	// Check them all before claiming any: an *os.File closes its fd when
	// collected, and an fd that is not a socket is not ours to take.
	for i := range n {
		var st unix.Stat_t
		fd := listenFDsStart + i
		if err := unix.Fstat(fd, &st); err != nil {
			return nil, fmt.Errorf("socket activation: LISTEN_FDS=%d: fd %d (%s) is not open: %w", n, fd, names[i], err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
			return nil, fmt.Errorf("socket activation: LISTEN_FDS=%d: fd %d (%s) is not a socket", n, fd, names[i])
		}
	}
	set := &SocketSet{sockets: make([]Socket, n)}
	if n == 0 {
		set.none = "LISTEN_FDS=0: the service manager passed no sockets"
	}
	for i := range n {
		fd := listenFDsStart + i
		unix.CloseOnExec(fd)
		set.sockets[i] = Socket{Name: names[i], File: os.NewFile(uintptr(fd), names[i])}
	}
	return set, nil
}

// All returns every passed socket, in order.
func (s *SocketSet) All() []Socket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Socket(nil), s.sockets...)
}

// Names lists the passed sockets' names, in order (with repeats: systemd
// gives every socket of a .socket unit the same name).
func (s *SocketSet) Names() []string {
	names := make([]string, len(s.sockets))
	for i, k := range s.sockets {
		names[i] = k.Name
	}
	return names
}

// missing is the error for a name not passed.
func (s *SocketSet) missing(name string) error {
	if len(s.sockets) == 0 {
		return fmt.Errorf("socket %q: %w: %s", name, ErrNoSocket, s.none)
	}
	return fmt.Errorf("socket %q: %w: the service manager passed %s (LISTEN_FDNAMES); set FileDescriptorName= in the .socket unit, or name it in baton's [sockets.NAME]", name, ErrNoSocket, strings.Join(s.Names(), ", "))
}

// Listeners returns the passed stream sockets named name as listeners
// (several: a .socket unit with two ListenStream= names both alike).
func (s *SocketSet) Listeners(name string) ([]net.Listener, error) {
	var out []net.Listener
	for i, k := range s.sockets {
		if k.Name != name {
			continue
		}
		l, err := s.listener(i)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, s.missing(name)
	}
	return out, nil
}

// Listener returns the one passed socket named name.
func (s *SocketSet) Listener(name string) (net.Listener, error) {
	ls, err := s.Listeners(name)
	if err != nil {
		return nil, err
	}
	if len(ls) > 1 {
		return nil, fmt.Errorf("socket %q: %d sockets passed under that name; use Listeners", name, len(ls))
	}
	return ls[0], nil
}

// AllListeners returns every passed socket as a listener, in order.
func (s *SocketSet) AllListeners() ([]net.Listener, error) {
	out := make([]net.Listener, len(s.sockets))
	for i := range s.sockets {
		l, err := s.listener(i)
		if err != nil {
			return nil, err
		}
		out[i] = l
	}
	return out, nil
}

func (s *SocketSet) listener(i int) (net.Listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.listeners[i]; ok {
		return l, nil
	}
	k := s.sockets[i]
	// Accept without waking every worker of the pool per connection;
	// where the kernel cannot (no EPOLLEXCLUSIVE before Linux 4.5), as Go
	// does. Either listener keeps its own copy of the fd and closes the
	// passed one: keeping both would keep the socket listening after the
	// listener is closed, and connections would queue where nobody
	// accepts them.
	var l net.Listener
	if xl, xerr := newExclusiveListener(k.File); xerr == nil {
		l = xl
	} else {
		fl, err := net.FileListener(k.File)
		if err != nil {
			return nil, fmt.Errorf("socket %q (fd %d): not a listening stream socket: %w", k.Name, listenFDsStart+i, err)
		}
		if err := k.File.Close(); err != nil {
			return nil, errors.Join(fmt.Errorf("socket %q: close fd %d: %w", k.Name, listenFDsStart+i, err), fl.Close())
		}
		l = fl
	}
	s.sockets[i].File = nil
	if s.listeners == nil {
		s.listeners = map[int]net.Listener{}
	}
	s.listeners[i] = l
	return l, nil
}
