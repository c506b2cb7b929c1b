package serve

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testutil"
)

// testHandler: / answers "ok"; /sleep?ms=N answers after N ms (or when
// the request's context ends); /block waits for release, ignoring its
// context, as a wedged handler does.
type testHandler struct {
	release chan struct{}
	// afterDeadline records what a write returned once the handler's
	// context was done.
	afterDeadline chan error
}

func newTestHandler() *testHandler {
	return &testHandler{release: make(chan struct{}), afterDeadline: make(chan error, 10)}
}

func (h *testHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/sleep":
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
		}
		fmt.Fprintf(w, "slept\n")
	case "/block":
		<-h.release
		_, err := w.Write([]byte("late\n"))
		h.afterDeadline <- err
	case "/stream":
		w.WriteHeader(200)
		fmt.Fprintf(w, "first\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
		<-h.release
		_, err := fmt.Fprintf(w, "after %v\n", r.Context().Err())
		h.afterDeadline <- err
	case "/panic":
		panic("boom")
	default:
		fmt.Fprintf(w, "ok\n")
	}
}

func TestReadyOnceEveryListenerAccepts(t *testing.T) {
	testutil.CheckFDLeaks(t)
	m := newManager(t)
	var ls []net.Listener
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	r := start(t, Config{Handler: newTestHandler(), Notifier: m.notifier(t)}, ls...)
	if msg := m.waitFor(t, "READY=1", 10*time.Second); msg != "READY=1\nSTATUS=serving" {
		t.Errorf("ready message %q", msg)
	}
	for _, l := range r.s.listeners {
		if !l.entered.Load() {
			t.Errorf("READY=1 before %s was accepted on", l.Addr())
		}
	}
	for _, l := range ls {
		dial(t, l.Addr().String()).mustGet("/")
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if msg := m.waitFor(t, "STOPPING=1", 10*time.Second); msg != "STOPPING=1\nSTATUS=draining" {
		t.Errorf("stopping message %q", msg)
	}
}

// The drain with keep-alive connections, client by client: one that sends
// on its idle connection is answered (with Connection: close), not reset;
// one that stays quiet is closed only after the quiet window; one in the
// middle of a request gets its whole answer.
func TestDrainKeepAlive(t *testing.T) {
	testutil.CheckFDLeaks(t)
	const window = time.Second
	r := start(t, Config{Handler: newTestHandler(), QuietWindow: window})
	sender, quiet, late, busy := dial(t, r.addr), dial(t, r.addr), dial(t, r.addr), dial(t, r.addr)
	for _, c := range []*client{sender, quiet, late} {
		if resp := c.mustGet("/"); resp.Close {
			t.Fatal("Connection: close before the drain")
		}
	}
	// busy's request is running when the drain begins.
	if _, err := fmt.Fprintf(busy.c, "GET /sleep?ms=300 HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the slow request to run", func() bool { return r.s.inflight.Load() == 1 })

	began := time.Now()
	r.cancel()
	eventually(t, "the drain to begin", r.s.draining.Load)

	// late sends a little before the window closes.
	lateDone := make(chan string, 1)
	go func() {
		time.Sleep(time.Until(began.Add(window / 4)))
		if _, err := fmt.Fprintf(late.c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
			lateDone <- "write: " + err.Error()
			return
		}
		sent := time.Since(began)
		resp, _, err := late.read()
		switch {
		case err == nil && resp.StatusCode == 200 && resp.Close:
			lateDone <- ""
		case sent >= window:
			// Too busy a machine: the request went out after the window,
			// where closing the connection is allowed.
			t.Logf("late request sent %s into the drain, after the %s window; not judged (%v)", sent, window, err)
			lateDone <- ""
		default:
			lateDone <- fmt.Sprintf("sent %s into the drain: %v %v", sent, resp, err)
		}
	}()

	resp := sender.mustGet("/")
	if !resp.Close {
		t.Errorf("a request during the drain was answered without Connection: close: %v", resp.Header)
	}
	if _, err := sender.closedByPeer(10 * time.Second); err != nil {
		t.Errorf("the server kept the connection after Connection: close: %v", err)
	}

	resp, body, err := busy.read()
	if err != nil || resp.StatusCode != 200 || body != "slept\n" {
		t.Errorf("the request in flight: %v %q %v", resp, body, err)
	}
	if e := <-lateDone; e != "" {
		t.Errorf("a request on an idle connection within the window failed: %s", e)
	}

	at, err := quiet.closedByPeer(10 * time.Second)
	if err != nil {
		t.Fatalf("the quiet connection: %v", err)
	}
	if d := at.Sub(began); d < window {
		t.Errorf("an idle connection was closed %s into the drain, before the %s quiet window", d, window)
	}
	if err := r.stop(t); err != nil {
		t.Error(err)
	}
}

// A connection accepted but silent is treated like an idle one: closed
// after the window, not at once.
func TestDrainWaitsForASilentNewConnection(t *testing.T) {
	const window = 300 * time.Millisecond
	r := start(t, Config{Handler: newTestHandler(), QuietWindow: window})
	c := dial(t, r.addr)
	eventually(t, "the connection to be accepted", func() bool {
		r.s.mu.Lock()
		defer r.s.mu.Unlock()
		return len(r.s.conns) == 1
	})
	r.cancel()
	eventually(t, "the drain to begin", r.s.draining.Load)
	time.Sleep(window / 3)
	resp := c.mustGet("/") // its first request, well within the window
	if !resp.Close {
		t.Error("no Connection: close")
	}
}

// Under a pre-fork manager the listening socket is shared: here two
// servers accept on one socket and one of them drains again and again
// while clients open connections and send on them with keep-alive. No
// request may fail: not the first request on a connection the draining
// server had just accepted, nor one sent on a connection it held idle.
func TestDrainUnderLoadFailsNoRequest(t *testing.T) {
	testutil.CheckFDLeaks(t)
	base, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	share := func() net.Listener {
		f, err := base.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		l, err := net.FileListener(f)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	stay := start(t, Config{Handler: newTestHandler()}, base)

	var ok, failed atomic.Int64
	var mu sync.Mutex
	var errs []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := net.Dial("tcp", stay.addr)
				if err != nil {
					failed.Add(1)
					mu.Lock()
					errs = append(errs, "dial: "+err.Error())
					mu.Unlock()
					return
				}
				cl := &client{t: t, c: c, br: newReader(c)}
				// A few requests per connection, some with a pause, so
				// that connections sit idle when a drain begins.
				for k := 0; k < 5; k++ {
					select {
					case <-stop:
						c.Close()
						return
					default:
					}
					if (i+k)%3 == 0 {
						time.Sleep(time.Duration(k) * time.Millisecond)
					}
					resp, body, err := cl.get("/")
					if err != nil || resp.StatusCode != 200 || body != "ok\n" {
						failed.Add(1)
						mu.Lock()
						errs = append(errs, fmt.Sprintf("%v %q %v", resp, body, err))
						mu.Unlock()
						break
					}
					ok.Add(1)
					if resp.Close {
						break
					}
				}
				c.Close()
			}
		}()
	}
	for range 6 {
		// A window far longer than the clients' pauses: what is tested
		// here is every request being answered around the drain, not the
		// window (TestDrainKeepAlive), and a busy machine may stall a
		// client for a while.
		d := start(t, Config{Handler: newTestHandler(), QuietWindow: 5 * time.Second}, share())
		before := ok.Load()
		eventually(t, "requests to flow", func() bool { return ok.Load() > before+200 || failed.Load() > 0 })
		if err := d.stop(t); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests, %d failed", ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d requests failed, first: %s", failed.Load(), errs[0])
	}
}

func TestRequestDeadlineAnswers504(t *testing.T) {
	h := newTestHandler()
	r := start(t, Config{Handler: h, RequestTimeout: 100 * time.Millisecond})
	c := dial(t, r.addr)
	resp, body, err := c.get("/block")
	if err != nil || resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "deadline of 100ms") {
		t.Fatalf("%v %q %v", resp, body, err)
	}
	// The connection is free for the next request while the handler runs.
	c.mustGet("/")
	if n := r.s.inflight.Load(); n != 1 {
		t.Errorf("in flight %d: the wedged handler must still count", n)
	}
	if r.s.overdue.Load() != 1 || r.s.timedOut.Load() != 1 {
		t.Errorf("overdue %d, timed out %d", r.s.overdue.Load(), r.s.timedOut.Load())
	}
	close(h.release)
	if err := <-h.afterDeadline; !errors.Is(err, http.ErrHandlerTimeout) {
		t.Errorf("the handler's write after the 504: %v", err)
	}
	eventually(t, "the handler to be done", func() bool { return r.s.inflight.Load() == 0 && r.s.overdue.Load() == 0 })
	if !strings.Contains(r.log.String(), "past its deadline; answered 504") {
		t.Errorf("log:\n%s", r.log)
	}
}

// A handler that began its answer is not interrupted by a 504: its
// context is cancelled and what it writes still goes out.
func TestRequestDeadlineAfterTheAnswerBegan(t *testing.T) {
	h := newTestHandler()
	r := start(t, Config{Handler: h, RequestTimeout: 100 * time.Millisecond})
	c := dial(t, r.addr)
	got := make(chan string, 1)
	go func() {
		resp, body, err := c.get("/stream")
		if err != nil {
			got <- err.Error()
			return
		}
		got <- fmt.Sprint(resp.StatusCode, " ", body, err)
	}()
	eventually(t, "the deadline to pass", func() bool { return strings.Contains(r.log.String(), "after its response began") })
	if r.s.timedOut.Load() != 0 || r.s.overdue.Load() != 1 {
		t.Errorf("timed out %d, overdue %d", r.s.timedOut.Load(), r.s.overdue.Load())
	}
	close(h.release)
	if g := <-got; g != "200 first\nafter context deadline exceeded\n<nil>" {
		t.Errorf("answer %q", g)
	}
	if err := <-h.afterDeadline; err != nil {
		t.Errorf("write after the deadline: %v", err)
	}
}

func TestRequestDeadlineInTime(t *testing.T) {
	r := start(t, Config{Handler: newTestHandler(), RequestTimeout: 5 * time.Second})
	c := dial(t, r.addr)
	resp := c.mustGet("/sleep?ms=10")
	if resp.Header.Get("Content-Type") == "" {
		t.Error("no content type sniffed")
	}
	if r.s.timedOut.Load() != 0 {
		t.Error("timed out")
	}
}

// A panic in a handler under a deadline reaches net/http as it would
// without one: logged, connection closed.
func TestRequestDeadlinePanic(t *testing.T) {
	errLog := &logBuffer{}
	srv := &http.Server{ErrorLog: newStdLogger(errLog)}
	r := start(t, Config{Handler: newTestHandler(), RequestTimeout: 5 * time.Second, Server: srv})
	c := dial(t, r.addr)
	if resp, _, err := c.get("/panic"); err == nil {
		t.Fatalf("a panicking handler answered %d", resp.StatusCode)
	}
	eventually(t, "the panic to be logged", func() bool { return strings.Contains(errLog.String(), "boom") })
	if !strings.Contains(errLog.String(), "handler goroutine") {
		t.Errorf("no handler stack in:\n%s", errLog)
	}
}

func TestUpgradeRequestsAreNotTimed(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(*timeoutWriter); ok {
			t.Error("an upgrade request got a deadline")
		}
		w.WriteHeader(http.StatusNoContent)
	})
	r := start(t, Config{Handler: h, RequestTimeout: time.Second})
	c := dial(t, r.addr)
	fmt.Fprintf(c.c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp, _, err := c.read(); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("%v %v", resp, err)
	}
}

func TestNewChecksConfig(t *testing.T) {
	if _, err := New(Config{Notifier: &Notifier{}}); err == nil || !strings.Contains(err.Error(), "Handler is nil") {
		t.Errorf("no handler: %v", err)
	}
	if _, err := New(Config{Handler: newTestHandler(), RequestTimeout: -1, Notifier: &Notifier{}}); err == nil {
		t.Error("negative timeout accepted")
	}
	s, err := New(Config{Handler: newTestHandler(), Notifier: &Notifier{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(t.Context()); err == nil {
		t.Error("Serve with no listeners")
	}
}

// Close during a drain ends it at once, closing what is open.
func TestCloseEndsADrain(t *testing.T) {
	r := start(t, Config{Handler: newTestHandler(), QuietWindow: time.Hour})
	c := dial(t, r.addr)
	c.mustGet("/")
	r.cancel()
	eventually(t, "the drain to begin", r.s.draining.Load)
	if err := r.s.Close(); err != nil {
		t.Log(err)
	}
	if _, err := c.closedByPeer(10 * time.Second); err != nil {
		t.Errorf("connection after Close: %v", err)
	}
	if err := r.stop(t); err != nil {
		t.Error(err)
	}
	if !strings.Contains(r.log.String(), "closed under their clients") {
		t.Errorf("log:\n%s", r.log)
	}
}

func TestDrainTimeout(t *testing.T) {
	r := start(t, Config{Handler: newTestHandler(), QuietWindow: time.Hour, DrainTimeout: 200 * time.Millisecond})
	c := dial(t, r.addr)
	c.mustGet("/")
	began := time.Now()
	if err := r.stop(t); err != nil {
		t.Error(err)
	}
	if d := time.Since(began); d < 200*time.Millisecond {
		t.Errorf("drain returned after %s, before its timeout, with a connection idle for less than the window", d)
	}
	if _, err := c.closedByPeer(10 * time.Second); err != nil {
		t.Error(err)
	}
	if !strings.Contains(r.log.String(), "drain timeout") {
		t.Errorf("log:\n%s", r.log)
	}
}
