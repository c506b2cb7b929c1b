package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/fdutil"
	"golang.org/x/sys/unix"
)

// Request is what a client asks.
type Request struct {
	Command string `json:"command"`         // "reload", "scale", "status", "upgrade"
	Wait    bool   `json:"wait,omitempty"`  // reload: answer when it finished
	Delta   int    `json:"delta,omitempty"` // scale: workers to add (or drain)
}

// Response is the answer: OK with a message, or an error.
type Response struct {
	OK      bool    `json:"ok"`
	Message string  `json:"message,omitempty"`
	Error   string  `json:"error,omitempty"`
	Status  *Status `json:"status,omitempty"`
}

// Handler carries out requests. cmd/baton implements it over the
// supervisor.
type Handler interface {
	Reload(ctx context.Context, wait bool) (string, error)
	Scale(ctx context.Context, delta int) (string, error)
	Status(ctx context.Context) (*Status, error)
	Upgrade(ctx context.Context) (string, error)
}

type connKey struct{}

// ConnFD returns the fd of the connection a request came on, so that a
// handler that replaces the process (an upgrade) can hand the waiting
// client to the next one, which answers it with Reply.
func ConnFD(ctx context.Context) (int, bool) {
	fd, ok := ctx.Value(connKey{}).(int)
	return fd, ok
}

// Reply answers a client handed over by a previous process, and closes
// the connection.
func Reply(fd int, resp Response) error {
	f := os.NewFile(uintptr(fd), "control-client")
	defer f.Close()
	return json.NewEncoder(f).Encode(resp)
}

// ListenFD takes over a control socket handed over across exec.
func ListenFD(fd int, path string, h Handler) (*Server, error) {
	f := os.NewFile(uintptr(fd), "control")
	l, err := net.FileListener(f)
	cerr := f.Close()
	if err != nil {
		return nil, fmt.Errorf("adopt control socket: %w", err)
	}
	if cerr != nil {
		return nil, errors.Join(fmt.Errorf("adopt control socket: %w", cerr), l.Close())
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		return nil, errors.Join(fmt.Errorf("adopt control socket: fd %d is a %T", fd, l), l.Close())
	}
	ul.SetUnlinkOnClose(true)
	return &Server{l: ul, path: path, h: h, OnError: func(error) {}}, nil
}

// FD returns the listening socket's fd, for handing it over across exec.
func (s *Server) FD() (int, error) { return fdutil.Raw(s.l) }

// Server accepts control connections.
type Server struct {
	l    *net.UnixListener
	path string
	h    Handler
	wg   sync.WaitGroup
	// OnError receives the errors of single connections (a bad request, a
	// refused peer). Listen's default drops them; callers set their logger.
	OnError func(error)
}

// ErrInUse says a live process listens on the control socket's path.
var ErrInUse = errors.New("another process listens there")

// Listen creates the control socket at path.
func Listen(path string, h Handler) (*Server, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		// Another baton's socket is never taken over: only one nobody
		// listens on any more is stale.
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: %w", path, ErrInUse)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale control socket: %w", err)
		}
	}
	// The umask makes the socket 0600 from its creation on, with no window
	// in which others could connect.
	old := unix.Umask(0o177)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	l.SetUnlinkOnClose(true)
	return &Server{l: l, path: path, h: h, OnError: func(error) {}}, nil
}

// Path is where the socket is.
func (s *Server) Path() string { return s.path }

// Serve answers connections until ctx ends, then closes the socket and
// waits for the connections in progress.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.l.Close() })
	defer stop()
	defer s.wg.Wait()
	for {
		conn, err := s.l.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("control socket: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.serveConn(ctx, conn); err != nil {
				s.OnError(err)
			}
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, conn *net.UnixConn) error {
	defer conn.Close()
	if err := checkPeer(conn); err != nil {
		_ = json.NewEncoder(conn).Encode(Response{Error: err.Error()})
		return err
	}
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	var req Request
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	if err != nil {
		_ = json.NewEncoder(conn).Encode(Response{Error: "bad request: " + err.Error()})
		return fmt.Errorf("control request: %w", err)
	}
	var msg string
	var st *Status
	if fd, ferr := fdutil.Raw(conn); ferr == nil {
		ctx = context.WithValue(ctx, connKey{}, fd)
	}
	switch req.Command {
	case "status":
		st, err = s.h.Status(ctx)
	case "upgrade":
		msg, err = s.h.Upgrade(ctx)
	case "reload":
		msg, err = s.h.Reload(ctx, req.Wait)
	case "scale":
		msg, err = s.h.Scale(ctx, req.Delta)
	default:
		err = fmt.Errorf("unknown command %q", req.Command)
	}
	resp := Response{OK: err == nil, Message: msg, Status: st}
	if err != nil {
		resp.Error = err.Error()
	}
	return json.NewEncoder(conn).Encode(resp)
}

// checkPeer admits the socket owner's uid and root only.
func checkPeer(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("peer credentials: %w", cerr)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("uid %d may not use this control socket", cred.Uid)
	}
	return nil
}

// Call sends one request to the control socket at path and returns the
// response's message; a response with OK false comes back as an error.
func Call(ctx context.Context, path string, req Request) (string, error) {
	resp, err := roundTrip(ctx, path, req)
	if err != nil {
		return "", err
	}
	return resp.Message, nil
}

// ErrNoAnswer is returned when baton closed the connection without an
// answer: it was stopping, or executing itself in place (an upgrade), and
// the request may or may not have been carried out.
var ErrNoAnswer = errors.New("baton closed the connection without answering (stopping, or upgrading in place?); check with baton status")

// GetStatus asks for the pool's status. It asks once more when baton
// closed the connection unanswered: a status request that arrives while
// baton executes itself in place is dropped with the old image.
func GetStatus(ctx context.Context, path string) (*Status, error) {
	resp, err := roundTrip(ctx, path, Request{Command: "status"})
	if errors.Is(err, ErrNoAnswer) {
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		resp, err = roundTrip(ctx, path, Request{Command: "status"})
	}
	if err != nil {
		return nil, err
	}
	if resp.Status == nil {
		return nil, errors.New("baton sent no status")
	}
	return resp.Status, nil
}

func roundTrip(ctx context.Context, path string, req Request) (*Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect to baton at %s: %w", path, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		// Closed before the request was even read: no answer either.
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
			return nil, ErrNoAnswer
		}
		return nil, fmt.Errorf("send to baton: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return nil, ErrNoAnswer
		}
		return nil, fmt.Errorf("read answer from baton: %w", err)
	}
	if !resp.OK {
		return nil, errors.New(resp.Error)
	}
	return &resp, nil
}
