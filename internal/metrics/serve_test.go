package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testutil"
	"golang.org/x/sys/unix"
)

type reports struct {
	mu   sync.Mutex
	errs []error
}

func (r *reports) add(err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() }

func (r *reports) has(target error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, err := range r.errs {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

func serve(t *testing.T) (string, *reports) {
	t.Helper()
	testutil.CheckFDLeaks(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	rep := &reports{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, h, rep.add) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return "http://" + l.Addr().String() + "/", rep
}

func get(url string, timeout time.Duration) error {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// Connections beyond MaxConns wait in the backlog, costing no fd, until
// one of the open ones goes.
func TestConnectionCap(t *testing.T) {
	url, _ := serve(t)
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for i := 0; i < MaxConns; i++ {
		c, err := net.Dial("tcp", url[len("http://"):len(url)-1])
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	if err := get(url, 300*time.Millisecond); err == nil {
		t.Fatalf("a scrape was served beside %d idle connections, beyond the cap", MaxConns)
	}
	idle[0].Close()
	if err := get(url, 20*time.Second); err != nil {
		t.Errorf("scrape once a connection closed: %v", err)
	}
}

// A failed accept (EMFILE) is retried and reported; scrapes work again once
// fds free up.
func TestAcceptSurvivesFDExhaustion(t *testing.T) {
	url, rep := serve(t)
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
	c, err := net.Dial("tcp", url[len("http://"):len(url)-1])
	if err != nil {
		restore()
		t.Fatalf("dial at the limit: %v", err)
	}
	defer c.Close()
	ok := testutil.Eventually(t, 10*time.Second, func() bool { return rep.has(syscall.EMFILE) })
	restore()
	if !ok {
		t.Fatal("no EMFILE reported")
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(c); err != nil || len(b) == 0 {
		t.Errorf("the connection that waited out EMFILE: %q %v", b, err)
	}
	if err := get(url, 20*time.Second); err != nil {
		t.Errorf("a scrape after EMFILE: %v", err)
	}
}
