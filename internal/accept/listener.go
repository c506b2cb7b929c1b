package accept

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// Backoff bounds between two failed accepts.
const (
	MinDelay = 5 * time.Millisecond
	MaxDelay = time.Second
)

// Listener is a net.Listener whose Accept returns only a connection or, once
// closed, an error: every other failure is retried and reported.
type Listener struct {
	net.Listener
	slots  chan struct{} // one token per open connection; nil: no cap
	done   chan struct{}
	once   sync.Once
	report func(error)
	// wait sleeps for d unless the listener closes first; tests replace it.
	wait func(done <-chan struct{}, d time.Duration) bool
}

// New wraps l. max caps the connections open at once (0: no cap); report
// receives accept failures, each naming the delay before the next try
// (callers rate-limit it; at most one per MaxDelay comes once the backoff
// is at its ceiling).
func New(l net.Listener, max int, report func(error)) *Listener {
	al := &Listener{Listener: l, done: make(chan struct{}), report: report, wait: sleep}
	if max > 0 {
		al.slots = make(chan struct{}, max)
	}
	return al
}

func sleep(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// Accept waits for a free slot, then for a connection.
func (l *Listener) Accept() (net.Conn, error) {
	if l.slots != nil {
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return nil, l.errClosed()
		}
	}
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return &conn{Conn: c, release: l.release}, nil
		}
		if errors.Is(err, net.ErrClosed) {
			l.release()
			return nil, err
		}
		if l.closed() {
			l.release()
			return nil, l.errClosed()
		}
		delay = min(max(2*delay, MinDelay), MaxDelay)
		l.report(fmt.Errorf("%w; retrying in %s", err, delay))
		if !l.wait(l.done, delay) {
			l.release()
			return nil, l.errClosed()
		}
	}
}

func (l *Listener) errClosed() error {
	return &net.OpError{Op: "accept", Net: l.Addr().Network(), Addr: l.Addr(), Err: net.ErrClosed}
}

func (l *Listener) release() {
	if l.slots != nil {
		<-l.slots
	}
}

func (l *Listener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// Close closes the listener; an Accept waiting for a slot or a retry
// returns at once.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// conn gives its slot back when closed, once.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// SyscallConn reaches the socket, for peer credentials (SO_PEERCRED).
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%T has no file descriptor", c.Conn)
	}
	return sc.SyscallConn()
}

// CloseWrite half-closes, as net/http does before closing a connection it
// answered with an error.
func (c *conn) CloseWrite() error {
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok {
		return nil
	}
	return cw.CloseWrite()
}
