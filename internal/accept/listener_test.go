package accept

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testutil"
)

// failing fails its first n accepts with EMFILE, then accepts from a real
// listener.
type failing struct {
	net.Listener
	mu sync.Mutex
	n  int
}

func (f *failing) Accept() (net.Conn, error) {
	f.mu.Lock()
	if f.n > 0 {
		f.n--
		f.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	f.mu.Unlock()
	return f.Listener.Accept()
}

func unixListener(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("unix", t.TempDir()+"/s.sock")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestBackoffDoublesToOneSecond(t *testing.T) {
	testutil.CheckFDLeaks(t)
	var reports []error
	var delays []time.Duration
	l := New(&failing{Listener: unixListener(t), n: 12}, 0, func(err error) { reports = append(reports, err) })
	defer l.Close()
	l.wait = func(_ <-chan struct{}, d time.Duration) bool { delays = append(delays, d); return true }
	go func() {
		c, err := net.Dial("unix", l.Addr().String())
		if err == nil {
			defer c.Close()
			_, _ = c.Read(make([]byte, 1))
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("accept after EMFILE: %v", err)
	}
	c.Close()
	ms := time.Millisecond
	want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second, time.Second, time.Second}
	if len(delays) != len(want) {
		t.Fatalf("delays %v, want %v", delays, want)
	}
	for i := range want {
		if delays[i] != want[i] {
			t.Fatalf("delays %v, want %v", delays, want)
		}
	}
	if len(reports) != 12 || !errors.Is(reports[0], syscall.EMFILE) {
		t.Errorf("reports %v", reports)
	}
}

func TestCloseEndsARetry(t *testing.T) {
	testutil.CheckFDLeaks(t)
	l := New(&failing{Listener: unixListener(t), n: 1 << 30}, 1, func(error) {})
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	l.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("accept after close: %v", err)
	}
}

func TestCapHoldsConnectionsInTheBacklog(t *testing.T) {
	testutil.CheckFDLeaks(t)
	l := New(unixListener(t), 2, func(err error) { t.Error(err) })
	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := 0; i < 3; i++ {
		c, err := net.Dial("unix", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	a, b := <-accepted, <-accepted
	select {
	case c := <-accepted:
		c.Close()
		t.Fatal("a third connection was accepted beyond the cap of 2")
	case <-time.After(100 * time.Millisecond):
	}
	a.Close()
	a.Close() // a second close gives back no second slot
	c := <-accepted
	select {
	case d, ok := <-accepted:
		if ok {
			d.Close()
			t.Fatal("a double close freed two slots")
		}
	case <-time.After(100 * time.Millisecond):
	}
	b.Close()
	c.Close()
	l.Close()
	for range accepted {
	}
}
