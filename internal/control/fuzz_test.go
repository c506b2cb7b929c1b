package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fuzzHandler checks that only valid requests reach it.
type fuzzHandler struct {
	fakeHandler
	bad atomic.Value // string: what reached the handler that should not have
}

func (h *fuzzHandler) Scale(_ context.Context, delta int) (string, error) {
	if delta == 0 || delta > MaxScaleDelta || delta < -MaxScaleDelta {
		h.bad.Store(fmt.Sprintf("scale by %d reached the handler", delta))
	}
	return "scaled", nil
}

func (h *fuzzHandler) Upgrade(context.Context) (string, error) { return "upgraded", nil }

// counted counts what the server reads.
type counted struct {
	*net.UnixConn
	n atomic.Int64
}

func (c *counted) Read(b []byte) (int, error) {
	n, err := c.UnixConn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func socketpair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c.(*net.UnixConn)
	}
	return conns[0], conns[1]
}

// FuzzRequest sends arbitrary bytes to a real server connection (the peer
// check included: the peer is this process): the server never panics,
// reads at most MaxRequestSize+1 bytes, and answers with one JSON line or
// closes, within its deadlines.
func FuzzRequest(f *testing.F) {
	for _, seed := range []string{
		`{"command":"status"}` + "\n",
		`{"command":"reload","wait":true}` + "\n",
		`{"command":"scale","delta":-1}` + "\n",
		`{"command":"scale","delta":0}` + "\n",
		`{"command":"scale","delta":1e99}` + "\n",
		`{"command":"upgrade"}`,
		"\n",
		"{\"command\":\"status\"}\n{\"command\":\"reload\"}\n",
		"\xff\xfe\x00\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h := &fuzzHandler{}
		s := &Server{h: h, OnError: func(error) {}, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
		srv, cli := socketpair(t)
		defer cli.Close()
		sc := &counted{UnixConn: srv}
		done := make(chan error, 1)
		go func() { done <- s.serveConn(context.Background(), sc) }()
		go func() {
			_, _ = cli.Write(data)
			_ = cli.CloseWrite()
		}()
		if err := cli.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
		answer, err := io.ReadAll(cli)
		if err != nil && !errors.Is(err, unix.ECONNRESET) {
			t.Fatalf("reading the answer: %v", err)
		}
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("the server still holds the connection")
		}
		if n := sc.n.Load(); n > MaxRequestSize+1 {
			t.Fatalf("the server read %d bytes", n)
		}
		if bad, _ := h.bad.Load().(string); bad != "" {
			t.Fatal(bad)
		}
		if len(answer) == 0 {
			return
		}
		line, rest, ok := bytes.Cut(answer, []byte("\n"))
		if !ok || len(rest) > 0 {
			t.Fatalf("answer is not one line: %q", answer)
		}
		var resp Response
		dec := json.NewDecoder(bufio.NewReader(bytes.NewReader(line)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&resp); err != nil {
			t.Fatalf("answer %q: %v", line, err)
		}
		if resp.OK == (resp.Error != "") {
			t.Fatalf("answer %q: ok and error disagree", line)
		}
	})
}

// A client sending 2,000 MiB costs the server 64 KiB of reading: it stops
// at the limit and answers.
func TestServerReadsAtMostTheLimit(t *testing.T) {
	s := &Server{h: fakeHandler{}, OnError: func(error) {}}
	srv, cli := socketpair(t)
	defer cli.Close()
	sc := &counted{UnixConn: srv}
	done := make(chan error, 1)
	go func() { done <- s.serveConn(context.Background(), sc) }()
	go func() {
		chunk := make([]byte, 1<<20)
		for i := 0; i < 2000; i++ {
			if _, err := cli.Write(chunk); err != nil {
				return
			}
		}
	}()
	if err := cli.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(cli).ReadBytes('\n')
	if err != nil || !bytes.Contains(line, []byte("larger than 65536 bytes")) {
		t.Errorf("answer %q %v", line, err)
	}
	if err := <-done; !errors.Is(err, ErrBadRequest) {
		t.Errorf("serveConn: %v", err)
	}
	if n := sc.n.Load(); n > MaxRequestSize+1 {
		t.Errorf("read %d bytes of the request", n)
	}
}
