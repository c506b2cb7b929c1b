package serve

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// exclusiveListener accepts on a socket shared with other processes (every
// worker of a pool has the same listening socket) without a thundering
// herd. Go's network poller registers a listener without EPOLLEXCLUSIVE,
// so each new connection wakes the poller of every worker: at 1,000
// workers that was about 1,000 context switches and 4 ms of CPU per
// connection (docs/benchmarks.md, Scale). This listener keeps the socket
// out of Go's poller and waits on an epoll instance of its own where the
// socket is registered with EPOLLEXCLUSIVE, so the kernel wakes one
// waiter (or a few) per connection. The connections it returns are
// ordinary *net.TCPConn or *net.UnixConn, on Go's poller.
//
// The kernel wakes the first exclusive waiter in the socket's wait queue
// that is idle in epoll_wait, so on its own EPOLLEXCLUSIVE hands every
// connection of a light load to the same worker (the imbalance nginx
// users know). After each connection it accepts, the listener moves its
// wait entry to the tail of the queue (requeue), which spreads connections
// round robin over the idle workers, as the herd did, without the herd.
type exclusiveListener struct {
	fd, epfd, evfd int
	addr           net.Addr
	deadline       atomic.Int64 // unix nanoseconds; 0: none

	// regMu orders requeues of concurrent Accepts; registered says
	// whether fd is in epfd's interest list (a failed requeue leaves it
	// out until the next Accept puts it back).
	regMu      sync.Mutex
	registered bool

	// mu is held for reading by Accept while it uses the fds and for
	// writing by Close to release them, so no fd is closed under a waiter
	// (and its number reused) while Accept may still use it.
	mu     sync.RWMutex
	closed atomic.Bool
}

// newExclusiveListener takes over f, a listening stream socket, and
// closes it (the listener keeps its own copy), as net.FileListener does.
func newExclusiveListener(f *os.File) (l *exclusiveListener, err error) {
	src := int(f.Fd())
	if v, err := unix.GetsockoptInt(src, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v == 0 {
		return nil, fmt.Errorf("not a listening socket: %v", errors.Join(err, errIf(v == 0, "SO_ACCEPTCONN is 0")))
	}
	if v, err := unix.GetsockoptInt(src, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || v != unix.SOCK_STREAM {
		return nil, fmt.Errorf("not a stream socket: %v", errors.Join(err, errIf(v != unix.SOCK_STREAM, "SO_TYPE is not SOCK_STREAM")))
	}
	sa, err := unix.Getsockname(src)
	if err != nil {
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	l = &exclusiveListener{fd: -1, epfd: -1, evfd: -1, addr: sockaddrAddr(sa)}
	defer func() {
		if err != nil {
			l.release()
		}
	}()
	if l.fd, err = unix.FcntlInt(uintptr(src), unix.F_DUPFD_CLOEXEC, 3); err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	if err = unix.SetNonblock(l.fd, true); err != nil {
		return nil, fmt.Errorf("non-blocking: %w", err)
	}
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if l.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err = l.register(); err != nil {
		return nil, err
	}
	if err = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.evfd)}); err != nil {
		return nil, fmt.Errorf("epoll_ctl eventfd: %w", err)
	}
	if err = f.Close(); err != nil {
		return nil, fmt.Errorf("close the passed fd: %w", err)
	}
	return l, nil
}

func errIf(cond bool, msg string) error {
	if cond {
		return errors.New(msg)
	}
	return nil
}

func sockaddrAddr(sa unix.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}
	}
	return &net.UnixAddr{Name: "?", Net: "unix"}
}

// register puts the socket in the epoll's interest list, at the tail of
// the socket's wait queue. The caller holds regMu or owns l alone. If a
// connection is already queued, epoll_ctl marks it ready at once, so no
// wake-up is lost while the socket was out of the list.
func (l *exclusiveListener) register() error {
	if l.registered {
		return nil
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(l.fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl add listener: %w", err)
	}
	l.registered = true
	return nil
}

// requeue moves this listener to the tail of the socket's wait queue, so
// the next connection wakes another idle worker first. EPOLL_CTL_MOD is
// not allowed with EPOLLEXCLUSIVE; a delete and an add is the way.
func (l *exclusiveListener) requeue() error {
	l.regMu.Lock()
	defer l.regMu.Unlock()
	if l.registered {
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.fd, nil); err != nil {
			return fmt.Errorf("epoll_ctl del listener: %w", err)
		}
		l.registered = false
	}
	return l.register()
}

func (l *exclusiveListener) ensureRegistered() error {
	l.regMu.Lock()
	defer l.regMu.Unlock()
	return l.register()
}

func (l *exclusiveListener) Addr() net.Addr { return l.addr }

// SetDeadline bounds the Accept calls in progress and to come, as
// (*net.TCPListener).SetDeadline does; serve wakes its accept loop with it
// to ping the watchdog.
func (l *exclusiveListener) SetDeadline(t time.Time) error {
	v := int64(0)
	if !t.IsZero() {
		v = t.UnixNano()
	}
	l.deadline.Store(v)
	if l.closed.Load() {
		return net.ErrClosed
	}
	// Wake a waiter so that it takes the new deadline.
	return l.kick()
}

func (l *exclusiveListener) kick() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.evfd < 0 {
		return net.ErrClosed
	}
	var one = [8]byte{1}
	if _, err := unix.Write(l.evfd, one[:]); err != nil && !errors.Is(err, unix.EAGAIN) {
		return err
	}
	return nil
}

func (l *exclusiveListener) opError(err error) error {
	return &net.OpError{Op: "accept", Net: l.addr.Network(), Addr: l.addr, Err: err}
}

func (l *exclusiveListener) Accept() (net.Conn, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	events := make([]unix.EpollEvent, 2)
	for {
		if l.closed.Load() {
			return nil, l.opError(net.ErrClosed)
		}
		nfd, _, err := unix.Accept4(l.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
			f := os.NewFile(uintptr(nfd), "accepted")
			c, err := net.FileConn(f)
			if cerr := f.Close(); err == nil && cerr != nil {
				_ = c.Close()
				err = cerr
			}
			if err != nil {
				return nil, l.opError(err)
			}
			// The connection is returned even if the requeue failed. A
			// failed delete leaves the socket registered where it was (no
			// rotation, nothing lost); a failed add leaves it out, and
			// the next Accept registers it before it waits or reports
			// that error.
			_ = l.requeue()
			return c, nil
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
		default:
			// EMFILE and the like: net/http backs off and calls again.
			return nil, l.opError(os.NewSyscallError("accept4", err))
		}
		if err := l.ensureRegistered(); err != nil {
			return nil, l.opError(err)
		}
		timeout := -1
		if d := l.deadline.Load(); d != 0 {
			left := time.Until(time.Unix(0, d))
			if left <= 0 {
				return nil, l.opError(os.ErrDeadlineExceeded)
			}
			timeout = int(left.Milliseconds()) + 1
		}
		n, err := unix.EpollWait(l.epfd, events, timeout)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return nil, l.opError(os.NewSyscallError("epoll_wait", err))
		}
		for _, ev := range events[:max(n, 0)] {
			if int(ev.Fd) == l.evfd {
				var b [8]byte
				_, _ = unix.Read(l.evfd, b[:]) // drained; EAGAIN if another waiter did
			}
		}
	}
}

// Close stops the listener: a waiting Accept returns net.ErrClosed. The
// socket itself stays open in the other processes that share it.
func (l *exclusiveListener) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	_ = l.kick() // wakes the waiter, which sees closed and lets go of mu
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.release()
}

func (l *exclusiveListener) release() error {
	var errs []error
	for _, fd := range []*int{&l.fd, &l.epfd, &l.evfd} {
		if *fd >= 0 {
			errs = append(errs, unix.Close(*fd))
			*fd = -1
		}
	}
	return errors.Join(errs...)
}
