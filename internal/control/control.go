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

	"github.com/batonhq/baton/internal/accept"
	"github.com/batonhq/baton/internal/fdutil"
	"github.com/batonhq/baton/internal/logging"
	"github.com/batonhq/baton/internal/printable"
	"github.com/batonhq/baton/internal/unixsock"
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

// Limits on one control connection: a client that sends too much, sends
// slowly or never reads its answer costs baton a goroutine and an fd for
// a bounded time only.
const (
	// MaxRequestSize bounds one request line.
	MaxRequestSize = 64 << 10
	// DefaultReadTimeout bounds reading the whole request.
	DefaultReadTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds writing the answer, once there is one.
	DefaultWriteTimeout = 10 * time.Second
	// MaxConns caps the connections open at once; more wait in the
	// socket's backlog. `reload --wait` holds one for the whole reload.
	MaxConns = 32
	// MaxScaleDelta bounds one scale request, far beyond any real pool.
	MaxScaleDelta = 10000
)

// WorkerCheck says whether the process pid is one of baton's workers or
// was started by one. cmd/baton supplies it (the process tree today; a
// worker's cgroup once workers get one each); an error refuses the peer.
type WorkerCheck func(pid int) (worker bool, err error)

// ErrRefused is wrapped by the errors of refused peers.
var ErrRefused = errors.New("refused")

// Server accepts control connections.
type Server struct {
	l    *net.UnixListener
	path string
	h    Handler
	wg   sync.WaitGroup
	// OnError receives the errors of single connections (a bad request, a
	// refused peer) and of failed accepts, each kind at a limited rate.
	// Listen's default drops them; callers set their logger.
	OnError func(error)
	// IsWorker, when set, identifies baton's own workers among peers;
	// they are refused unless AllowWorkers returns true (worker-control).
	IsWorker     WorkerCheck
	AllowWorkers func() bool
	// ReadTimeout bounds reading a request, WriteTimeout writing its
	// answer. Zero: DefaultReadTimeout, DefaultWriteTimeout.
	ReadTimeout, WriteTimeout time.Duration
}

// ErrInUse says a live process listens on the control socket's path
// (unixsock.ErrInUse; errors.Is matches syscall.EADDRINUSE too).
var ErrInUse = unixsock.ErrInUse

// Listen creates the control socket at path. A stale socket file there
// is replaced; one that a live baton listens on is an error
// (unixsock.ErrInUse), never taken over.
func Listen(path string, h Handler) (*Server, error) {
	if err := unixsock.RemoveStale(path); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
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
// waits for the connections in progress. A failed accept (fd exhaustion)
// is retried, never the end of the server.
func (s *Server) Serve(ctx context.Context) error {
	onError := s.OnError
	connErr := logging.Limit(10, 10*time.Second, onError)
	acceptErr := logging.Limit(10, 10*time.Second, func(err error) {
		onError(fmt.Errorf("control socket: %w", err))
	})
	l := accept.New(s.l, MaxConns, acceptErr)
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer s.wg.Wait()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Only a closed listener ends up here.
			return fmt.Errorf("control socket: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.serveConn(ctx, conn); err != nil {
				connErr(err)
			}
		}()
	}
}

// conn is what serveConn needs of a connection: deadlines, and the socket
// for peer credentials.
type conn interface {
	net.Conn
	syscall.Conn
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) error {
	defer c.Close()
	sc, ok := c.(conn)
	if !ok {
		return fmt.Errorf("control connection: %T has no socket", c)
	}
	peerErr := s.checkPeer(sc)
	if err := c.SetReadDeadline(time.Now().Add(orDefault(s.ReadTimeout, DefaultReadTimeout))); err != nil {
		return errors.Join(peerErr, fmt.Errorf("control connection: %w", err))
	}
	// A refused peer's request is read all the same: the log says what it
	// asked for, and it gets its answer rather than a reset connection.
	req, err := readRequest(c)
	if errors.Is(err, io.EOF) && peerErr == nil {
		return nil
	}
	if peerErr != nil {
		if req != nil {
			peerErr = fmt.Errorf("%w (it asked for %s)", peerErr, req)
		}
		return errors.Join(peerErr, s.answer(c, Response{Error: peerErr.Error()}))
	}
	if err != nil {
		return errors.Join(err, s.answer(c, Response{Error: err.Error()}))
	}
	if fd, ferr := fdutil.Raw(sc); ferr == nil {
		ctx = context.WithValue(ctx, connKey{}, fd)
	}
	var msg string
	var st *Status
	switch req.Command {
	case "status":
		st, err = s.h.Status(ctx)
	case "upgrade":
		msg, err = s.h.Upgrade(ctx)
	case "reload":
		msg, err = s.h.Reload(ctx, req.Wait)
	case "scale":
		msg, err = s.h.Scale(ctx, req.Delta)
	}
	resp := Response{OK: err == nil, Message: msg, Status: st}
	if err != nil {
		resp.Error = err.Error()
	}
	return s.answer(c, resp)
}

// String names the request for logs.
func (r *Request) String() string {
	switch r.Command {
	case "scale":
		return fmt.Sprintf("scale %+d", r.Delta)
	case "reload":
		if r.Wait {
			return "reload --wait"
		}
	}
	return r.Command
}

// ErrBadRequest is wrapped by the errors of requests that were refused
// unread or unparsed.
var ErrBadRequest = errors.New("bad request")

// readRequest reads one request line of at most MaxRequestSize bytes and
// checks it, so that the handler sees only requests it can carry out.
func readRequest(r io.Reader) (*Request, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, MaxRequestSize+1), 4096)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxRequestSize {
			return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadRequest, MaxRequestSize)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(line) == 0 {
				// Closed without a word: a probe, such as unixsock.Live.
				return nil, io.EOF
			}
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: %w after %d bytes", ErrBadRequest, err, len(line))
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	switch req.Command {
	case "status", "upgrade", "reload":
	case "scale":
		if req.Delta == 0 {
			return nil, fmt.Errorf("%w: scale by 0 workers", ErrBadRequest)
		}
		if req.Delta > MaxScaleDelta || req.Delta < -MaxScaleDelta {
			return nil, fmt.Errorf("%w: scale by %d workers: at most %d either way", ErrBadRequest, req.Delta, MaxScaleDelta)
		}
	default:
		return nil, fmt.Errorf("%w: unknown command %q", ErrBadRequest, truncate(req.Command, 64))
	}
	return &req, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// answer writes resp within WriteTimeout.
func (s *Server) answer(c net.Conn, resp Response) error {
	if err := c.SetWriteDeadline(time.Now().Add(orDefault(s.WriteTimeout, DefaultWriteTimeout))); err != nil {
		return fmt.Errorf("control answer: %w", err)
	}
	if err := json.NewEncoder(c).Encode(resp); err != nil {
		return fmt.Errorf("control answer: %w", err)
	}
	return nil
}

// checkPeer admits the socket owner's uid and root, and of those not
// baton's own workers (unless AllowWorkers says so).
func (s *Server) checkPeer(c syscall.Conn) error {
	cred, err := peerCred(c)
	if err != nil {
		return err
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: uid %d (pid %d) may not use this control socket", ErrRefused, cred.Uid, cred.Pid)
	}
	if s.IsWorker == nil || (s.AllowWorkers != nil && s.AllowWorkers()) {
		return nil
	}
	// Root is beyond what baton defends against, and an unprivileged
	// baton's workers cannot become root (the shipped unit sets
	// NoNewPrivileges=); its processes may also be hidden from baton
	// (ProtectProc=invisible), so that they could not be looked up.
	if cred.Uid == 0 && os.Geteuid() != 0 {
		return nil
	}
	worker, err := s.IsWorker(int(cred.Pid))
	if err != nil {
		return fmt.Errorf("%w: pid %d: cannot tell whether it is one of baton's workers: %w", ErrRefused, cred.Pid, err)
	}
	if worker {
		return fmt.Errorf("%w: pid %d is one of baton's workers or was started by one; workers may not use the control socket (worker-control = false)", ErrRefused, cred.Pid)
	}
	return nil
}

func peerCred(c syscall.Conn) (*unix.Ucred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return nil, fmt.Errorf("peer credentials: %w", cerr)
	}
	return cred, nil
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
	werr := json.NewEncoder(conn).Encode(req)
	if werr != nil && !errors.Is(werr, syscall.EPIPE) && !errors.Is(werr, syscall.ECONNRESET) {
		return nil, fmt.Errorf("send to baton: %w", werr)
	}
	// A connection closed before the request was sent may still hold an
	// answer (a refusal); if not, there is none.
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if werr != nil || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return nil, ErrNoAnswer
		}
		return nil, fmt.Errorf("read answer from baton: %w", err)
	}
	// What baton answers may quote workers (a STATUS= in a reload error):
	// it reaches the caller's terminal escaped.
	resp.Message = printable.EscapeLines(resp.Message)
	if !resp.OK {
		return nil, errors.New(printable.EscapeLines(resp.Error))
	}
	return &resp, nil
}
