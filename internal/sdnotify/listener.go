package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/batonhq/baton/internal/fdutil"
	"github.com/batonhq/baton/internal/unixsock"
	"golang.org/x/sys/unix"
)

// Datagram is one received notification with the sender's kernel-verified
// credentials. FDs are the descriptors passed with it; the receiver owns them
// and must close them (Close does).
type Datagram struct {
	PID, UID, GID int
	Message       *Message
	FDs           []int
}

// Close closes every fd that came with the datagram. systemd closes a
// BARRIER=1 fd only after it processed everything received before it, so
// callers close after acting on the message.
func (d *Datagram) Close() error {
	var errs []error
	for _, fd := range d.FDs {
		if err := unix.Close(fd); err != nil {
			errs = append(errs, fmt.Errorf("close passed fd %d: %w", fd, err))
		}
	}
	d.FDs = nil
	return errors.Join(errs...)
}

// DropError reports a datagram that was read and discarded. Its fds have
// already been closed. Callers count these; the listener keeps going.
type DropError struct {
	PID    int // 0 when the kernel gave no credentials
	Kind   DropKind
	Reason string
}

// DropKind classifies a dropped datagram.
type DropKind string

const (
	// DropOversized: larger than MaxMessageSize (or truncated).
	DropOversized DropKind = "oversized"
	// DropMalformed: no credentials, bad control data, or a message that
	// does not parse.
	DropMalformed DropKind = "malformed"
)

func (e *DropError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("dropped notification from pid %d: %s", e.PID, e.Reason)
	}
	return "dropped notification: " + e.Reason
}

// Listener is a SOCK_DGRAM unix socket with SO_PASSCRED set, the service
// manager's end of NOTIFY_SOCKET.
type Listener struct {
	conn *net.UnixConn
	path string
	buf  []byte
	oob  []byte
}

// maxFDs bounds the fds accepted in one datagram. The kernel caps SCM_RIGHTS
// at 253; the control buffer is sized for that so a flood of fds is received
// (and closed), never left queued or truncated into a leak.
const maxFDs = 253

// Listen creates the socket at path. A stale socket file there is
// removed first; one that a live process still uses is an error
// (unixsock.ErrInUse).
func Listen(path string) (*Listener, error) {
	if err := unixsock.RemoveStale(path); err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("listen on notify socket: %w", err)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("notify socket: %w", err), conn.Close())
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
		if serr == nil {
			// Room for bursts from many workers at once.
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
		}
	}); err != nil || serr != nil {
		return nil, errors.Join(fmt.Errorf("set SO_PASSCRED on notify socket: %w", errors.Join(err, serr)), conn.Close())
	}
	return &Listener{
		conn: conn,
		path: path,
		buf:  make([]byte, MaxMessageSize+1),
		oob:  make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*maxFDs)),
	}, nil
}

// ListenerFromFD takes over an open notify socket (SO_PASSCRED already
// set), as a baton executed in place does from its predecessor.
func ListenerFromFD(fd int, path string) (*Listener, error) {
	f := os.NewFile(uintptr(fd), "notify")
	c, err := net.FileConn(f)
	cerr := f.Close()
	if err != nil {
		return nil, fmt.Errorf("adopt notify socket: %w", err)
	}
	if cerr != nil {
		return nil, errors.Join(fmt.Errorf("adopt notify socket: %w", cerr), c.Close())
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, errors.Join(fmt.Errorf("adopt notify socket: fd %d is a %T", fd, c), c.Close())
	}
	return &Listener{conn: uc, path: path, buf: make([]byte, MaxMessageSize+1), oob: make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*maxFDs))}, nil
}

// FD returns the socket's descriptor, for handing it over across exec.
func (l *Listener) FD() (int, error) { return fdutil.Raw(l.conn) }

// Path is the socket's filesystem path, the value for NOTIFY_SOCKET.
func (l *Listener) Path() string { return l.path }

// Close closes the socket and removes its file.
func (l *Listener) Close() error {
	err := l.conn.Close()
	if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// Receive blocks for the next datagram. A datagram that is oversized,
// truncated, carries no credentials or does not parse is dropped with its fds
// closed and returned as a *DropError; any other error means the socket is
// unusable (closed).
func (l *Listener) Receive() (*Datagram, error) {
	n, oobn, flags, _, err := l.conn.ReadMsgUnix(l.buf, l.oob)
	if err != nil {
		return nil, fmt.Errorf("read notify socket: %w", err)
	}
	return l.parse(n, oobn, flags)
}

// ErrNoDatagram is ReceiveNow's answer when nothing is queued.
var ErrNoDatagram = errors.New("no notification queued")

// ReceiveNow is Receive without waiting: ErrNoDatagram when nothing is
// queued. With WaitReadable it lets one goroutine read everything queued,
// in order, whenever it chooses (before it judges a clock, say).
func (l *Listener) ReceiveNow() (*Datagram, error) {
	rc, err := l.conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("read notify socket: %w", err)
	}
	var n, oobn, flags int
	var rerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), l.buf, l.oob, unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
			if !errors.Is(rerr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return nil, fmt.Errorf("read notify socket: %w", err)
	}
	switch {
	case errors.Is(rerr, unix.EAGAIN):
		return nil, ErrNoDatagram
	case rerr != nil:
		return nil, fmt.Errorf("read notify socket: %w", rerr)
	}
	return l.parse(n, oobn, flags)
}

// WaitReadable blocks (in Go's poller, not a thread) until a datagram is
// queued, or the socket is closed (an error).
func (l *Listener) WaitReadable() error {
	rc, err := l.conn.SyscallConn()
	if err != nil {
		return err
	}
	// Checked after the poller reset its readiness: a datagram that came
	// before is seen here, one that comes after wakes the wait.
	return rc.Read(func(fd uintptr) bool {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(p, 0)
		return err != nil || n > 0
	})
}

// parse turns a received datagram into a Datagram or a DropError.
func (l *Listener) parse(n, oobn, flags int) (*Datagram, error) {
	d := &Datagram{}
	var cred *unix.Ucred
	cmsgs, perr := unix.ParseSocketControlMessage(l.oob[:oobn])
	for _, c := range cmsgs {
		switch {
		case c.Header.Level == unix.SOL_SOCKET && c.Header.Type == unix.SCM_RIGHTS:
			fds, err := unix.ParseUnixRights(&c)
			if err == nil {
				d.FDs = append(d.FDs, fds...)
			}
		case c.Header.Level == unix.SOL_SOCKET && c.Header.Type == unix.SCM_CREDENTIALS:
			if uc, err := unix.ParseUnixCredentials(&c); err == nil {
				cred = uc
			}
		}
	}
	if cred != nil {
		d.PID, d.UID, d.GID = int(cred.Pid), int(cred.Uid), int(cred.Gid)
	}
	drop := func(kind DropKind, reason string) (*Datagram, error) {
		cerr := d.Close()
		if cerr != nil {
			reason += "; " + cerr.Error()
		}
		return nil, &DropError{PID: d.PID, Kind: kind, Reason: reason}
	}
	switch {
	case perr != nil:
		return drop(DropMalformed, "malformed control data: "+perr.Error())
	case flags&syscall.MSG_CTRUNC != 0:
		return drop(DropOversized, "control data truncated")
	case n > MaxMessageSize || flags&syscall.MSG_TRUNC != 0:
		return drop(DropOversized, fmt.Sprintf("datagram larger than %d bytes", MaxMessageSize))
	case cred == nil || cred.Pid <= 0:
		return drop(DropMalformed, "no sender credentials")
	}
	msg, err := Parse(l.buf[:n])
	if err != nil {
		return drop(DropMalformed, err.Error())
	}
	d.Message = msg
	return d, nil
}
