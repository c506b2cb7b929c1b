package serve

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testutil"
)

// One socket for every message: sending a thousand opens no fd.
func TestNotifierKeepsOneSocket(t *testing.T) {
	testutil.CheckFDLeaks(t)
	m := newManager(t)
	n, err := NewNotifier(m.path)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	before := len(testutil.OpenFDs(t))
	for i := range 1000 {
		if err := n.Send(fmt.Sprintf("STATUS=%d", i)); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			if now := len(testutil.OpenFDs(t)); now != before {
				t.Fatalf("%d fds after %d messages, %d before", now, i, before)
			}
		}
	}
	for i := range 1000 {
		if got := m.waitFor(t, "STATUS=", 10*time.Second); got != fmt.Sprintf("STATUS=%d", i) {
			t.Fatalf("message %d: %q", i, got)
		}
	}
}

func TestNotifierMessages(t *testing.T) {
	m := newManager(t)
	n := m.notifier(t)
	for _, tc := range []struct {
		send func() error
		want string
	}{
		{func() error { return n.Ready("up\nREADY=0") }, "READY=1\nSTATUS=up READY=0"},
		{func() error { return n.Ready("") }, "READY=1"},
		{func() error { return n.Status("busy") }, "STATUS=busy"},
		{func() error { return n.Stopping("bye") }, "STOPPING=1\nSTATUS=bye"},
		{n.Watchdog, "WATCHDOG=1"},
		{func() error { return n.ExtendTimeout(1500 * time.Millisecond) }, "EXTEND_TIMEOUT_USEC=1500000"},
	} {
		if err := tc.send(); err != nil {
			t.Fatal(err)
		}
		if got := m.waitFor(t, "", 10*time.Second); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

// A manager that binds its socket anew (a re-executed manager may) still
// gets the messages: the notifier reconnects once.
func TestNotifierReconnects(t *testing.T) {
	testutil.CheckFDLeaks(t)
	m := newManager(t)
	n := m.notifier(t)
	if err := n.Send("STATUS=one"); err != nil {
		t.Fatal(err)
	}
	m.waitFor(t, "STATUS=one", 10*time.Second)
	m.conn.Close()
	os.Remove(m.path)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: m.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := n.Send("STATUS=two"); err != nil {
		t.Fatalf("after the socket was bound anew: %v", err)
	}
	buf := make([]byte, 100)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	k, err := c.Read(buf)
	if err != nil || string(buf[:k]) != "STATUS=two" {
		t.Errorf("%q %v", buf[:k], err)
	}
}

func TestNotifierAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@baton-serve-test-%d", os.Getpid())
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n, err := NewNotifier(name)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Send("READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if k, err := c.Read(buf); err != nil || string(buf[:k]) != "READY=1" {
		t.Errorf("%q %v", buf[:k], err)
	}
}

func TestNotifierWithoutManager(t *testing.T) {
	n, err := NewNotifier("")
	if err != nil || n.Enabled() {
		t.Fatalf("%v %v", n, err)
	}
	if err := n.Ready("x"); err != nil {
		t.Error(err)
	}
	var zero *Notifier
	if err := zero.Send("READY=1"); err != nil || zero.Close() != nil {
		t.Error("nil notifier")
	}
	if _, err := NewNotifier("relative/path"); err == nil || !strings.Contains(err.Error(), "absolute path") {
		t.Errorf("relative path: %v", err)
	}
	if _, err := NewNotifier("/nonexistent/notify.sock"); err == nil {
		t.Error("connected to nothing")
	}
}
