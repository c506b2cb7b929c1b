package sdnotify

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testutil"
	"golang.org/x/sys/unix"
)

func listen(t *testing.T) *Listener {
	t.Helper()
	l, err := Listen(filepath.Join(t.TempDir(), "notify"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func sender(t *testing.T, l *Listener) *Sender {
	t.Helper()
	s, err := NewSender(l.Path())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReceiveCarriesKernelCredentials(t *testing.T) {
	testutil.CheckFDLeaks(t)
	l := listen(t)
	if err := sender(t, l).Send("READY=1\nSTATUS=up"); err != nil {
		t.Fatal(err)
	}
	d, err := l.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if d.PID != os.Getpid() || d.UID != os.Getuid() {
		t.Errorf("credentials pid=%d uid=%d, want %d %d", d.PID, d.UID, os.Getpid(), os.Getuid())
	}
	if !d.Message.Ready || *d.Message.Status != "up" {
		t.Errorf("message %+v", d.Message)
	}
}

func TestReceiveDropsJunkAndClosesItsFDs(t *testing.T) {
	testutil.CheckFDLeaks(t)
	l := listen(t)
	s := sender(t, l)
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	junk := []struct {
		payload string
		fds     []int
		want    string
	}{
		{"NOT A MESSAGE", []int{fd, fd, fd}, "not KEY=VALUE"},
		{strings.Repeat("A", 3*MaxMessageSize), []int{fd}, "larger than"},
		{"READY=maybe", nil, "want 1"},
		{"\xff\xfe", nil, "UTF-8"},
	}
	for _, j := range junk {
		if err := s.Send(j.payload, j.fds...); err != nil {
			t.Fatal(err)
		}
		_, err := l.Receive()
		var drop *DropError
		if !errors.As(err, &drop) || !strings.Contains(err.Error(), j.want) {
			t.Errorf("junk %q: got %v, want drop containing %q", truncate(j.payload), err, j.want)
		}
		if drop != nil && drop.PID != os.Getpid() {
			t.Errorf("drop attributed to pid %d", drop.PID)
		}
	}
	// The listener still works after the junk.
	if err := s.Send("READY=1"); err != nil {
		t.Fatal(err)
	}
	if d, err := l.Receive(); err != nil || !d.Message.Ready {
		t.Fatalf("after junk: %v %v", d, err)
	}
}

func TestReceiveManyFDsDoesNotLeak(t *testing.T) {
	testutil.CheckFDLeaks(t)
	l := listen(t)
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fds := make([]int, maxFDs)
	for i := range fds {
		fds[i] = int(f.Fd())
	}
	if err := sender(t, l).Send("STATUS=flood", fds...); err != nil {
		t.Fatal(err)
	}
	d, err := l.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.FDs) != maxFDs {
		t.Errorf("received %d fds, want %d", len(d.FDs), maxFDs)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBarrierWaitsForClose(t *testing.T) {
	testutil.CheckFDLeaks(t)
	l := listen(t)
	done := make(chan error, 1)
	go func() { done <- sender(t, l).SendBarrier() }()
	d, err := l.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if !d.Message.Barrier || len(d.FDs) != 1 {
		t.Fatalf("barrier datagram %+v fds=%v", d.Message, d.FDs)
	}
	select {
	case <-done:
		t.Fatal("SendBarrier returned before the manager closed the fd")
	case <-time.After(50 * time.Millisecond):
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SendBarrier did not return after the fd was closed")
	}
}

func TestSenderAbstractAndErrors(t *testing.T) {
	if _, err := NewSender(""); !errors.Is(err, ErrNoSocket) {
		t.Errorf("empty: %v", err)
	}
	if _, err := NewSender("relative/path"); err == nil || !strings.Contains(err.Error(), "NOTIFY_SOCKET=") {
		t.Errorf("relative: %v", err)
	}
	// An abstract socket as systemd sometimes uses.
	name := "@baton-test-" + time.Now().Format("150405.000000000")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s, err := NewSender(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send("READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	missing, _ := NewSender("/nonexistent/notify")
	if err := missing.Send("READY=1"); err == nil || !strings.Contains(err.Error(), "/nonexistent/notify") {
		t.Errorf("send to missing socket: %v", err)
	}
	_ = unix.Getpid
}

func TestFDStoreMessages(t *testing.T) {
	testutil.CheckFDLeaks(t)
	l := listen(t)
	s := sender(t, l)
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.FDStore("web", int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	d, err := l.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if !d.Message.FDStore || *d.Message.FDName != "web" || len(d.FDs) != 1 {
		t.Errorf("store: %+v %v", d.Message, d.FDs)
	}
	d.Close()
	if err := s.FDStoreRemove("web"); err != nil {
		t.Fatal(err)
	}
	d, err = l.Receive()
	if err != nil || !d.Message.FDStoreRemove || *d.Message.FDName != "web" {
		t.Errorf("remove: %+v %v", d, err)
	}
}

// A second listener never takes over a live one's path; a dead one's file
// is replaced.
func TestListenRefusesALiveSocket(t *testing.T) {
	testutil.CheckFDLeaks(t)
	l := listen(t)
	_, err := Listen(l.Path())
	if !errors.Is(err, unix.EADDRINUSE) || !strings.Contains(err.Error(), l.Path()+": address already in use") {
		t.Fatalf("second listener: %v", err)
	}
	if err := sender(t, l).Send("READY=1"); err != nil {
		t.Fatal(err)
	}
	if d, err := l.Receive(); err != nil || !d.Message.Ready {
		t.Fatalf("the first listener lost its socket: %v", err)
	}
	// A socket file with nothing behind it is stale.
	path := filepath.Join(t.TempDir(), "stale")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("no stale file to test with: %v", err)
	}
	l2, err := Listen(path)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	l2.Close()
}

// A manager that does not read its socket makes Send fail after its
// timeout instead of blocking the sender for ever.
func TestSendToAFullSocketTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := NewSender(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Timeout = 50 * time.Millisecond
	for i := 0; i < 100000; i++ {
		err = s.Send("WATCHDOG=1")
		if err != nil {
			break
		}
	}
	if !errors.Is(err, ErrSendTimeout) {
		t.Fatalf("sending to a socket nobody reads: %v", err)
	}
	// Once the manager reads again, sends go through.
	if _, err := l.Receive(); err != nil {
		t.Fatal(err)
	}
	if err := s.Send("WATCHDOG=1"); err != nil {
		t.Errorf("after a read: %v", err)
	}
}
