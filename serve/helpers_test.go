package serve

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testutil"
)

// manager is a fake service manager's notify socket: it collects what the
// code under test sends.
type manager struct {
	path string
	conn *net.UnixConn
	msgs chan string
}

func newManager(t *testing.T) *manager {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	m := &manager{path: path, conn: c, msgs: make(chan string, 10000)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			m.msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return m
}

func (m *manager) notifier(t *testing.T) *Notifier {
	t.Helper()
	n, err := NewNotifier(m.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// waitFor returns the first message (skipping others) that has prefix.
func (m *manager) waitFor(t *testing.T, prefix string, within time.Duration) string {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case msg := <-m.msgs:
			if strings.HasPrefix(msg, prefix) {
				return msg
			}
		case <-deadline:
			t.Fatalf("no %q message within %s", prefix, within)
			return ""
		}
	}
}

// none fails if a message with prefix arrives within d.
func (m *manager) none(t *testing.T, prefix string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case msg := <-m.msgs:
			if strings.HasPrefix(msg, prefix) {
				t.Fatalf("got %q, want none within %s", msg, d)
			}
		case <-deadline:
			return
		}
	}
}

// drainMsgs forgets what arrived so far.
func (m *manager) drainMsgs() {
	for {
		select {
		case <-m.msgs:
		default:
			return
		}
	}
}

// logBuffer captures serve's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// running is a Server serving in the background.
type running struct {
	s      *Server
	addr   string
	cancel context.CancelFunc
	done   chan error
	log    *logBuffer
}

// start serves cfg on a fresh 127.0.0.1 listener (or on ls) and stops it
// at cleanup.
func start(t *testing.T, cfg Config, ls ...net.Listener) *running {
	t.Helper()
	if len(ls) == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = []net.Listener{l}
	}
	r := &running{log: &logBuffer{}, done: make(chan error, 1)}
	if cfg.Logger == nil {
		cfg.Logger = r.log.logger()
	}
	if cfg.Notifier == nil {
		cfg.Notifier = &Notifier{}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.s, r.addr = s, ls[0].Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- s.Serve(ctx, ls...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
			r.done <- err
		case <-time.After(30 * time.Second):
			t.Errorf("Serve did not return 30s after its context was cancelled\nlog:\n%s", r.log)
			_ = s.Close()
		}
	})
	return r
}

// stop cancels and waits for Serve.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("Serve did not return\nlog:\n%s", r.log)
		return nil
	}
}

// client is a raw HTTP/1.1 connection: it sends what it is told and never
// retries anything, unlike net/http's client.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// get sends one GET and reads the answer.
func (c *client) get(path string) (*http.Response, string, error) {
	if _, err := fmt.Fprintf(c.c, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path); err != nil {
		return nil, "", err
	}
	return c.read()
}

func (c *client) read() (*http.Response, string, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// mustGet is get that fails the test on a transport error or non-200.
func (c *client) mustGet(path string) *http.Response {
	c.t.Helper()
	resp, body, err := c.get(path)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != 200 {
		c.t.Fatalf("GET %s: %d %q", path, resp.StatusCode, body)
	}
	return resp
}

// closedByPeer waits until the server closes the connection, and says
// when it saw it.
func (c *client) closedByPeer(within time.Duration) (time.Time, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(within))
	var b [1]byte
	n, err := c.br.Read(b[:])
	if n > 0 {
		return time.Time{}, fmt.Errorf("unexpected byte %q", b[0])
	}
	if err == io.EOF {
		return time.Now(), nil
	}
	return time.Time{}, err
}

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(child(role))
	}
	os.Exit(m.Run())
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !testutil.Eventually(t, 20*time.Second, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func newStdLogger(w io.Writer) *log.Logger { return log.New(w, "", 0) }
