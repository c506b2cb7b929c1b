package serve

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testutil"
)

// listenFile is a TCP listening socket as a file, as LISTEN_FDS passes it.
func listenFile(t *testing.T) (*os.File, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return f, addr
}

// Two listeners on one socket (two workers of a pool) both accept; a
// deadline ends a waiting Accept with os.ErrDeadlineExceeded; Close ends
// one with net.ErrClosed and releases every fd.
func TestExclusiveListener(t *testing.T) {
	f, addr := listenFile(t)
	g, err := os.OpenFile("/dev/null", os.O_RDONLY, 0) // not a socket
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newExclusiveListener(g); err == nil {
		t.Error("newExclusiveListener(/dev/null) succeeded")
	}
	g.Close()
	dup, err := net.FileListener(f) // a second copy for the second listener
	if err != nil {
		t.Fatal(err)
	}
	f2, _ := dup.(*net.TCPListener).File()
	dup.Close()
	a, err := newExclusiveListener(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newExclusiveListener(f2)
	if err != nil {
		t.Fatal(err)
	}
	if a.Addr().String() != addr {
		t.Errorf("Addr() = %s, want %s", a.Addr(), addr)
	}
	for _, l := range []*exclusiveListener{a, b} {
		done := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err == nil {
				_, err = c.Write([]byte("x"))
				c.Close()
			}
			done <- err
		}()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		// Only l accepts now, so the connection is l's.
		if err := <-done; err != nil {
			t.Errorf("Accept: %v", err)
		}
		buf := make([]byte, 1)
		if _, err := c.Read(buf); err != nil || buf[0] != 'x' {
			t.Errorf("read %q, %v", buf, err)
		}
		c.Close()
	}
	if err := a.SetDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Accept(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Accept past its deadline: %v", err)
	}
	if err := a.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := a.Accept(); done <- err }()
	time.Sleep(20 * time.Millisecond) // let it wait; the test holds either way
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a waiting Accept")
	}
	if a.fd != -1 || a.epfd != -1 || a.evfd != -1 {
		t.Errorf("fds left open after Close: %d %d %d", a.fd, a.epfd, a.evfd)
	}
	// The socket stays open in b, as in the other workers of a pool.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("the socket closed with one of its listeners: %v", err)
	}
	c.Close()
	if err := b.Close(); err != nil {
		t.Errorf("Close b: %v", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("the socket still listens after every listener closed")
	}
}

// Connections of a light load are spread over the workers that wait, not
// all handed to the first one that registered: each listener moves itself
// to the back of the socket's wait queue after it accepts.
func TestExclusiveListenerSpreadsConnections(t *testing.T) {
	f, addr := listenFile(t)
	dup, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	f2, err := dup.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	dup.Close()
	var ls []*exclusiveListener
	for _, f := range []*os.File{f, f2} {
		l, err := newExclusiveListener(f)
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	done := make(chan struct{})
	for i, l := range ls {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Write([]byte{byte('a' + i)})
				c.Close()
			}
		}()
	}
	defer func() {
		for _, l := range ls {
			l.Close()
		}
		<-done
		<-done
	}()
	count := map[byte]int{}
	for i := 0; i < 20; i++ {
		// Both wait in epoll_wait before each connection, so which one
		// takes it is the kernel's choice, not a race with the client.
		if !testutil.Eventually(t, 10*time.Second, func() bool { return blockedOn(t, ls[0].epfd) && blockedOn(t, ls[1].epfd) }) {
			t.Fatal("the listeners never both waited in epoll_wait")
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := c.Read(b); err != nil {
			t.Fatal(err)
		}
		c.Close()
		count[b[0]]++
	}
	if count['a'] < 5 || count['b'] < 5 {
		t.Errorf("20 connections split %d/%d between two idle listeners, want both at least 5", count['a'], count['b'])
	}
}

// blockedOn says whether a thread of this process is blocked in a system
// call whose first argument is fd (for an epoll fd, epoll_wait).
func blockedOn(t *testing.T, fd int) bool {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	want := "0x" + strconv.FormatInt(int64(fd), 16)
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/syscall")
		if err != nil {
			continue // the thread ended
		}
		if f := strings.Fields(string(b)); len(f) > 1 && f[0] != "running" && f[1] == want {
			return true
		}
	}
	return false
}
