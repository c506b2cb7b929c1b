package serve

import (
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// watchdogEnv gives this process a watchdog of d (pings every d/2).
func watchdogEnv(t *testing.T, d time.Duration) {
	t.Setenv("WATCHDOG_USEC", strconv.FormatInt(d.Microseconds(), 10))
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
}

func TestWatchdogInterval(t *testing.T) {
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{"", "", 0, false},
		{"2000000", "", time.Second, false},
		{"2000000", strconv.Itoa(os.Getpid()), time.Second, false},
		{"2000000", "1", 0, false}, // another process's
		{"0", "", 0, true},
		{"x", "", 0, true},
		{"2000000", "x", 0, true},
	} {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		got, err := watchdogInterval()
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %s %v", tc.usec, tc.pid, got, err)
		}
	}
}

// An idle server pings: its accept loop wakes itself when a ping is due.
func TestWatchdogPingsWhileIdle(t *testing.T) {
	watchdogEnv(t, 200*time.Millisecond)
	m := newManager(t)
	start(t, Config{Handler: newTestHandler(), Notifier: m.notifier(t)})
	m.waitFor(t, "READY=1", 10*time.Second)
	for range 3 {
		m.waitFor(t, "WATCHDOG=1", 10*time.Second)
	}
}

// Requests stuck past their deadline with nothing completing stop the
// pings; once a request completes they resume.
func TestWatchdogStopsWhenRequestsAreStuck(t *testing.T) {
	watchdogEnv(t, 200*time.Millisecond)
	m := newManager(t)
	h := newTestHandler()
	r := start(t, Config{Handler: h, Notifier: m.notifier(t), RequestTimeout: 150 * time.Millisecond})
	m.waitFor(t, "WATCHDOG=1", 10*time.Second)

	if resp, _, err := dial(t, r.addr).get("/block"); err != nil || resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("%v %v", resp, err)
	}
	eventually(t, "the ping to be withheld", func() bool {
		return strings.Contains(r.log.String(), "withholding WATCHDOG=1: 1 requests ran past their deadline and none completed")
	})
	m.drainMsgs()
	m.none(t, "WATCHDOG=1", 600*time.Millisecond) // three intervals

	close(h.release)
	m.waitFor(t, "WATCHDOG=1", 10*time.Second)
	if !strings.Contains(r.log.String(), "resuming WATCHDOG=1") {
		t.Errorf("log:\n%s", r.log)
	}
}

// One wedged request does not stop the pings while others complete.
func TestWatchdogGoesOnWhileOtherRequestsComplete(t *testing.T) {
	watchdogEnv(t, 200*time.Millisecond)
	m := newManager(t)
	h := newTestHandler()
	defer close(h.release)
	r := start(t, Config{Handler: h, Notifier: m.notifier(t), RequestTimeout: 150 * time.Millisecond})
	if resp, _, err := dial(t, r.addr).get("/block"); err != nil || resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("%v %v", resp, err)
	}
	c := dial(t, r.addr)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				if _, _, err := c.get("/"); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	// Pings, all while the wedged request is overdue. (How many depends
	// on the client keeping up on a busy machine; that some come is the
	// point.)
	m.drainMsgs()
	for range 4 {
		m.waitFor(t, "WATCHDOG=1", 10*time.Second)
	}
	close(stop)
	<-done
	if r.s.overdue.Load() != 1 {
		t.Errorf("overdue %d: the wedged request ended early", r.s.overdue.Load())
	}
}

func TestWatchdogAsksHealthy(t *testing.T) {
	watchdogEnv(t, 200*time.Millisecond)
	m := newManager(t)
	var healthy atomic.Bool
	healthy.Store(true)
	r := start(t, Config{Handler: newTestHandler(), Notifier: m.notifier(t), Healthy: healthy.Load})
	m.waitFor(t, "WATCHDOG=1", 10*time.Second)
	healthy.Store(false)
	eventually(t, "the ping to be withheld", func() bool { return strings.Contains(r.log.String(), "health check failed") })
	m.drainMsgs()
	m.none(t, "WATCHDOG=1", 600*time.Millisecond)
	healthy.Store(true)
	m.waitFor(t, "WATCHDOG=1", 10*time.Second)
}

// An accept loop wedged between two accepts (here in a ConnState hook)
// stops the pings: nothing wakes it to send them. (With one listener
// nothing is left to log why; baton's watchdog log and the SIGABRT stack
// dump say it.)
func TestWatchdogStopsWhenTheAcceptLoopIsWedged(t *testing.T) {
	watchdogEnv(t, 200*time.Millisecond)
	m := newManager(t)
	var wedge atomic.Bool
	wedged, unwedge := make(chan struct{}), make(chan struct{})
	srv := &http.Server{ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew && wedge.CompareAndSwap(true, false) {
			close(wedged)
			<-unwedge
		}
	}}
	r := start(t, Config{Handler: newTestHandler(), Notifier: m.notifier(t), Server: srv})
	var once sync.Once
	release := func() { once.Do(func() { close(unwedge) }) }
	t.Cleanup(release) // before start's own cleanup, which needs the loop
	m.waitFor(t, "WATCHDOG=1", 10*time.Second)
	wedge.Store(true)
	c := dial(t, r.addr)
	select {
	case <-wedged:
	case <-time.After(10 * time.Second):
		t.Fatal("the hook was not reached")
	}
	m.drainMsgs()
	m.none(t, "WATCHDOG=1", 600*time.Millisecond) // three intervals
	release()
	c.mustGet("/")
	m.waitFor(t, "WATCHDOG=1", 10*time.Second)
}

// With two listeners, the live loop sees the wedged one and says so.
func TestWatchdogNamesTheWedgedLoop(t *testing.T) {
	watchdogEnv(t, 200*time.Millisecond)
	m := newManager(t)
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unwedge := make(chan struct{})
	srv := &http.Server{ConnState: func(c net.Conn, st http.ConnState) {
		if st == http.StateNew && c.LocalAddr().String() == b.Addr().String() {
			<-unwedge
		}
	}}
	r := start(t, Config{Handler: newTestHandler(), Notifier: m.notifier(t), Server: srv}, a, b)
	var once sync.Once
	release := func() { once.Do(func() { close(unwedge) }) }
	t.Cleanup(release)
	m.waitFor(t, "WATCHDOG=1", 10*time.Second)
	c := dial(t, b.Addr().String())
	eventually(t, "the ping to be withheld", func() bool {
		return strings.Contains(r.log.String(), "the accept loop on "+b.Addr().String()+" has not come back to Accept")
	})
	m.drainMsgs()
	m.none(t, "WATCHDOG=1", 600*time.Millisecond)
	release()
	c.mustGet("/")
	m.waitFor(t, "WATCHDOG=1", 10*time.Second)
}

// A listener that cannot wake its loop with a deadline: a ticker paces
// the pings, still judging the loop.
type plainListener struct{ net.Listener }

func TestWatchdogWithoutListenerDeadlines(t *testing.T) {
	watchdogEnv(t, 200*time.Millisecond)
	m := newManager(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, Config{Handler: newTestHandler(), Notifier: m.notifier(t)}, plainListener{l})
	for range 3 {
		m.waitFor(t, "WATCHDOG=1", 10*time.Second)
	}
	dial(t, r.addr).mustGet("/")
}

// While draining, the drain loop keeps the pings going.
func TestWatchdogDuringDrain(t *testing.T) {
	watchdogEnv(t, 200*time.Millisecond)
	m := newManager(t)
	r := start(t, Config{Handler: newTestHandler(), Notifier: m.notifier(t), QuietWindow: time.Hour})
	c := dial(t, r.addr)
	c.mustGet("/")
	r.cancel()
	m.waitFor(t, "STOPPING=1", 10*time.Second)
	for range 3 {
		m.waitFor(t, "WATCHDOG=1", 10*time.Second)
	}
	r.s.Close()
}
