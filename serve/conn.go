package serve

import (
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// conn is an accepted connection as serve tracks it: its HTTP state and
// since when, and whether bytes arrived since it went idle. net/http only
// says a connection is active once it has read a whole request head, so
// without the last a drain could close a connection whose next request is
// already half read.
type conn struct {
	net.Conn
	state     atomic.Int32 // an http.ConnState
	since     atomic.Int64 // when it entered the state (Server.now)
	readSince atomic.Bool  // bytes read since it went idle
	// shut is set once a drain shut its reading side (closeQuiet).
	shut atomic.Bool
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.readSince.Store(true)
	}
	return n, err
}

// ReadFrom keeps net/http's sendfile and splice paths, which it finds by
// asking the connection for io.ReaderFrom.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite keeps net/http's half-close before a final close, which
// spares a client its response being reset away.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// pending reports whether bytes wait in the kernel's receive queue: a
// request sent in time but not yet read by its goroutine (the machine is
// busy) must not be closed away.
func (c *conn) pending() bool {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	// An ioctl error (no queue to ask about) reads as nothing pending.
	if err := rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		return false
	}
	return n > 0
}

// NetConn returns the connection as accepted, for handlers that hijack and
// need the *net.TCPConn.
func (c *conn) NetConn() net.Conn { return c.Conn }

// track registers a connection just accepted.
func (s *Server) track(nc net.Conn) *conn {
	c := &conn{Conn: nc}
	c.since.Store(s.now())
	c.state.Store(int32(http.StateNew))
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	return c
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// connState is net/http's ConnState hook.
func (s *Server) connState(nc net.Conn, st http.ConnState) {
	if c, ok := nc.(*conn); ok {
		switch st {
		case http.StateActive:
			c.state.Store(int32(st))
		case http.StateIdle:
			// readSince first: a read after this must count.
			c.readSince.Store(false)
			c.since.Store(s.now())
			c.state.Store(int32(st))
		case http.StateClosed, http.StateHijacked:
			c.state.Store(int32(st))
			s.forget(c)
		}
	}
	if s.userHook != nil {
		s.userHook(nc, st)
	}
}

// closeQuiet closes the connections that have been quiet for the whole
// window, counted from the later of the drain's start and their last
// response (or their accept, for one that never sent a request), and
// returns how many stay open and how many of those are active.
func (s *Server) closeQuiet(now int64) (open, active int) {
	start := s.drainStart.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		switch http.ConnState(c.state.Load()) {
		case http.StateNew, http.StateIdle:
			if c.shut.Load() {
				break // until net/http reports it closed
			}
			if now-max(c.since.Load(), start) >= int64(s.quiet) && !c.readSince.Load() && !c.pending() {
				// Shut the reading side rather than close: a request
				// that its goroutine read from the kernel but had not yet
				// marked (readSince; a goroutine preempted there for a
				// second on a saturated machine lost a request in the
				// 1,000-worker benchmark) is still answered, and the
				// connection stays counted until net/http, reading EOF,
				// closes it. The error of this first shutdown is the
				// only one there is, and nothing is lost with it.
				if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
					c.shut.Store(true)
					_ = cr.CloseRead()
					break
				}
				delete(s.conns, c)
				_ = c.Conn.Close()
				continue
			}
		default:
			active++
		}
		open++
	}
	return open, active
}

// closeAll closes every tracked connection (Close, or DrainTimeout).
func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		delete(s.conns, c)
		_ = c.Conn.Close() // forced: whatever it was doing ends here
	}
}
