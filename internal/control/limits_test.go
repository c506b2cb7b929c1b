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
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testutil"
	"golang.org/x/sys/unix"
)

// errLog collects what a Server reports.
type errLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errLog) add(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *errLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

func (l *errLog) has(target error) bool {
	for _, err := range l.all() {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// serveWith runs a Server set up by setup; it is stopped at cleanup, and
// must then have returned.
func serveWith(t *testing.T, h Handler, setup func(*Server)) (string, *errLog) {
	t.Helper()
	testutil.CheckFDLeaks(t)
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := Listen(path, h)
	if err != nil {
		t.Fatal(err)
	}
	log := &errLog{}
	s.OnError = log.add
	if setup != nil {
		setup(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	return path, log
}

// rawRequest sends b on a fresh connection and returns the answer line.
func rawRequest(t *testing.T, path string, b []byte) (Response, error) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The server may answer and close before it read everything.
	go func() { _, _ = c.Write(b) }()
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return Response{}, err
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		t.Fatalf("answer %q: %v", line, err)
	}
	return resp, nil
}

// countingHandler fails the test when a request reaches it that should
// have been refused before.
type countingHandler struct {
	fakeHandler
	scales atomic.Int32
}

func (c *countingHandler) Scale(ctx context.Context, delta int) (string, error) {
	c.scales.Add(1)
	return fmt.Sprintf("scaled by %+d", delta), nil
}

func TestOversizedRequestIsRefusedUnread(t *testing.T) {
	path, log := serveWith(t, fakeHandler{}, nil)
	// 4 MiB without a newline: the server stops reading at 64 KiB.
	resp, err := rawRequest(t, path, make([]byte, 4<<20))
	if err != nil || resp.OK || !strings.Contains(resp.Error, "bad request: larger than 65536 bytes") {
		t.Errorf("answer %+v, %v", resp, err)
	}
	// A request of just under the limit is read whole.
	pad := strings.Repeat(" ", MaxRequestSize-40)
	resp, err = rawRequest(t, path, []byte(`{"command":"reload",`+pad+`"wait":true}`+"\n"))
	if err != nil || !resp.OK || resp.Message != "reloaded" {
		t.Errorf("request of %d bytes: %+v, %v", MaxRequestSize-7, resp, err)
	}
	if !testutil.Eventually(t, 5*time.Second, func() bool { return log.has(ErrBadRequest) }) {
		t.Errorf("the oversized request was not reported: %v", log.all())
	}
}

func TestScaleDeltaIsValidated(t *testing.T) {
	h := &countingHandler{}
	path, _ := serveWith(t, h, nil)
	for req, want := range map[string]string{
		`{"command":"scale"}`:                              "scale by 0 workers",
		`{"command":"scale","delta":0}`:                    "scale by 0 workers",
		`{"command":"scale","delta":10001}`:                "scale by 10001 workers: at most 10000 either way",
		`{"command":"scale","delta":-9223372036854775808}`: "at most 10000 either way",
		`{"command":"scale","delta":1e30}`:                 "cannot unmarshal number 1e30",
		`{"command":"scale","delta":99999999999999999999}`: "cannot unmarshal number",
		`{"command":"scale","delta":1.5}`:                  "cannot unmarshal number 1.5",
		`{"command":"scale","delta":"3"}`:                  "cannot unmarshal string",
		`{"command":"scale","delta":3} trailing`:           "invalid character",
		`{"command":"` + strings.Repeat("x", 5000) + `"}`:  `unknown command "xxxxxxxx`,
	} {
		resp, err := rawRequest(t, path, []byte(req+"\n"))
		if err != nil || resp.OK || !strings.HasPrefix(resp.Error, "bad request: ") || !strings.Contains(resp.Error, want) || len(resp.Error) > 300 {
			t.Errorf("%.60s: answer %+v, %v; want a bad request naming %q", req, resp, err, want)
		}
	}
	if n := h.scales.Load(); n != 0 {
		t.Errorf("%d invalid scale requests reached the handler", n)
	}
	for _, delta := range []int{1, -1, MaxScaleDelta, -MaxScaleDelta} {
		if msg, err := Call(context.Background(), path, Request{Command: "scale", Delta: delta}); err != nil || msg != fmt.Sprintf("scaled by %+d", delta) {
			t.Errorf("scale %d: %q %v", delta, msg, err)
		}
	}
}

// A client that connects and sends nothing, or half a request, is cut off
// at the read deadline.
func TestSilentClientIsCutOff(t *testing.T) {
	path, log := serveWith(t, fakeHandler{}, func(s *Server) { s.ReadTimeout = 200 * time.Millisecond })
	for _, send := range []string{"", `{"command":`} {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(send)); err != nil {
			t.Fatal(err)
		}
		if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadBytes('\n')
		c.Close()
		if err != nil || !strings.Contains(string(line), "i/o timeout") {
			t.Errorf("sent %q and waited: %q %v", send, line, err)
		}
	}
	if !testutil.Eventually(t, 5*time.Second, func() bool { return log.has(os.ErrDeadlineExceeded) }) {
		t.Errorf("timeouts not reported: %v", log.all())
	}
}

type hugeStatus struct{ fakeHandler }

func (hugeStatus) Status(context.Context) (*Status, error) {
	return &Status{Status: strings.Repeat("x", 32<<20)}, nil
}

// A client that never reads its answer holds the server for the write
// deadline only.
func TestClientThatNeverReadsIsCutOff(t *testing.T) {
	path, log := serveWith(t, hugeStatus{}, func(s *Server) { s.WriteTimeout = 200 * time.Millisecond })
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := json.NewEncoder(c).Encode(Request{Command: "status"}); err != nil {
		t.Fatal(err)
	}
	if !testutil.Eventually(t, 20*time.Second, func() bool { return log.has(os.ErrDeadlineExceeded) }) {
		t.Fatalf("the server still writes to a client that does not read: %v", log.all())
	}
	// The server closed its end: what is left to read ends.
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, c); err != nil || n >= 32<<20 {
		t.Errorf("read %d bytes after the deadline, %v", n, err)
	}
}

// A flood of bad connections is logged at a limited rate.
func TestBadConnectionFloodIsRateLimited(t *testing.T) {
	path, log := serveWith(t, fakeHandler{}, nil)
	start := time.Now()
	const n = 300
	for i := 0; i < n; i++ {
		if _, err := rawRequest(t, path, []byte("garbage\n")); err != nil {
			t.Fatal(err)
		}
	}
	budget := 10 + 1 + int(time.Since(start)/(10*time.Second))
	var errs []error
	testutil.Eventually(t, time.Second, func() bool { errs = log.all(); return len(errs) >= 10 })
	if len(errs) < 1 || len(errs) > budget {
		t.Errorf("%d bad connections logged %d times, want 1 to %d", n, len(errs), budget)
	}
}

type workerCheck struct {
	worker bool
	err    error
	pids   chan int
}

func (w *workerCheck) check(pid int) (bool, error) {
	w.pids <- pid
	return w.worker, w.err
}

// The server refuses its own workers unless allowed, and fails closed when
// it cannot tell.
func TestWorkersAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		check  workerCheck
		allow  bool
		refuse string
	}{
		{"worker", workerCheck{worker: true}, false, fmt.Sprintf("refused: pid %d is one of baton's workers or was started by one", os.Getpid())},
		{"allowed worker", workerCheck{worker: true}, true, ""},
		{"operator", workerCheck{}, false, ""},
		{"unknown", workerCheck{err: errors.New("no such process")}, false, "cannot tell whether it is one of baton's workers: no such process"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &countingHandler{}
			tc.check.pids = make(chan int, 1)
			path, log := serveWith(t, h, func(s *Server) {
				s.IsWorker = tc.check.check
				s.AllowWorkers = func() bool { return tc.allow }
			})
			_, err := Call(context.Background(), path, Request{Command: "scale", Delta: 3})
			if tc.refuse == "" {
				if err != nil || h.scales.Load() != 1 {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.refuse) || h.scales.Load() != 0 {
				t.Errorf("got %v, scaled %d times; want refused with %q", err, h.scales.Load(), tc.refuse)
			}
			if !testutil.Eventually(t, 5*time.Second, func() bool { return log.has(ErrRefused) }) {
				t.Errorf("refusal not logged: %v", log.all())
			}
			if tc.check.worker {
				if pid := <-tc.check.pids; pid != os.Getpid() {
					t.Errorf("checked pid %d, want the peer's %d", pid, os.Getpid())
				}
			}
		})
	}
}

// One failed accept (EMFILE) does not end the server: once fds free up, the
// connection that waited is answered and new ones are too.
func TestAcceptSurvivesFDExhaustion(t *testing.T) {
	path, log := serveWith(t, fakeHandler{}, nil)
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	restore := func() {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(restore)
	// The lowest free fd is the next one the kernel hands out; a limit just
	// above it leaves room for the client's socket and none for the
	// server's accept.
	free, err := unix.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(free)
	lim := orig
	lim.Cur = uint64(free) + 1
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		restore()
		t.Fatalf("dial at the limit: %v", err)
	}
	defer c.Close()
	if !testutil.Eventually(t, 10*time.Second, func() bool { return log.has(syscall.EMFILE) }) {
		restore()
		t.Fatalf("no EMFILE reported: %v", log.all())
	}
	restore()
	if err := json.NewEncoder(c).Encode(Request{Command: "reload", Wait: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil || resp.Message != "reloaded" {
		t.Errorf("the connection that waited out EMFILE: %+v %v", resp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if msg, err := Call(ctx, path, Request{Command: "reload", Wait: true}); err != nil || msg != "reloaded" {
		t.Errorf("a new connection after EMFILE: %q %v", msg, err)
	}
}
