package sdnotify

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoSocket is returned by NewSender when NOTIFY_SOCKET is unset: the
// process was not started by a service manager that listens.
var ErrNoSocket = errors.New("NOTIFY_SOCKET is not set")

// Sender sends notifications to one service manager socket. go-systemd's
// daemon.SdNotify cannot attach fds, which BARRIER=1 and FDSTORE=1 need, so
// this is the few lines of sendmsg it takes.
type Sender struct {
	addr string
	// Timeout bounds one Send while the manager's queue is full (a manager
	// that does not read). Zero: DefaultSendTimeout.
	Timeout time.Duration
}

// DefaultSendTimeout is how long Send waits for room in a full queue.
const DefaultSendTimeout = 5 * time.Second

// ErrSendTimeout is returned when the manager's queue stayed full.
var ErrSendTimeout = errors.New("the service manager's notify socket stayed full")

// NewSender returns a Sender for the socket named by value, a NOTIFY_SOCKET
// value: a path, or "@name" for the abstract namespace.
func NewSender(value string) (*Sender, error) {
	if value == "" {
		return nil, ErrNoSocket
	}
	if !strings.HasPrefix(value, "/") && !strings.HasPrefix(value, "@") {
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q: want an absolute path or @abstract name", value)
	}
	return &Sender{addr: value}, nil
}

// SenderFromEnv returns a Sender for $NOTIFY_SOCKET.
func SenderFromEnv() (*Sender, error) { return NewSender(os.Getenv("NOTIFY_SOCKET")) }

// Send sends state (newline-separated assignments) with fds attached. Each
// call uses a fresh socket so that the sender's credentials are the caller's.
func (s *Sender) Send(state string, fds ...int) error {
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("notify socket: %w", err)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	werr := s.sendmsg(sock, []byte(state), oob)
	cerr := unix.Close(sock)
	if werr != nil {
		return fmt.Errorf("send %q to notify socket %s: %w", firstLine(state), s.addr, werr)
	}
	if cerr != nil {
		return fmt.Errorf("close notify socket: %w", cerr)
	}
	return nil
}

// sendmsg sends without ever blocking longer than the timeout: connected,
// the socket polls writable only when the manager's queue has room.
func (s *Sender) sendmsg(sock int, msg, oob []byte) error {
	if err := unix.Connect(sock, &unix.SockaddrUnix{Name: s.addr}); err != nil {
		return err
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultSendTimeout
	}
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Sendmsg(sock, msg, oob, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if !errors.Is(err, unix.EAGAIN) {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return ErrSendTimeout
		}
		p := []unix.PollFd{{Fd: int32(sock), Events: unix.POLLOUT}}
		if _, err := unix.Poll(p, int(min(left, time.Second)/time.Millisecond)+1); err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// SendBarrier sends BARRIER=1 with one end of a pipe and waits until the
// manager closed it, i.e. processed everything sent before.
func (s *Sender) SendBarrier() error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("barrier pipe: %w", err)
	}
	defer unix.Close(p[0])
	err := s.Send("BARRIER=1", p[1])
	if cerr := unix.Close(p[1]); err == nil && cerr != nil {
		err = fmt.Errorf("close barrier pipe: %w", cerr)
	}
	if err != nil {
		return err
	}
	// Blocks until every copy of the write end is closed: ours is, the
	// manager's goes when it processed the barrier.
	var b [1]byte
	for {
		_, rerr := unix.Read(p[0], b[:])
		switch {
		case rerr == unix.EINTR:
			continue
		case rerr != nil:
			return fmt.Errorf("wait for barrier: %w", rerr)
		}
		return nil
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return truncate(l)
}

// FDStore hands fds to the manager's file descriptor store under name
// (FDSTORE=1, FDNAME=), where they survive the service's restarts and
// crashes and come back in LISTEN_FDS/LISTEN_FDNAMES. See systemd's
// docs/FILE_DESCRIPTOR_STORE.md.
func (s *Sender) FDStore(name string, fds ...int) error {
	return s.Send("FDSTORE=1\nFDNAME="+name, fds...)
}

// FDStoreRemove drops every fd stored under name (FDSTOREREMOVE=1).
func (s *Sender) FDStoreRemove(name string) error {
	return s.Send("FDSTOREREMOVE=1\nFDNAME=" + name)
}
