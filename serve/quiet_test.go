package serve

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A request its goroutine has taken from the kernel but not yet marked as
// read (the goroutine was preempted between the two) must still be
// answered when the quiet window closes the connection: closeQuiet shuts
// only the reading side and keeps counting the connection as open.
func TestCloseQuietSparesARequestAlreadyRead(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{epoch: time.Now(), quiet: time.Millisecond, conns: map[*conn]struct{}{}}
	c := s.track(server)
	defer c.Close()
	if _, err := io.WriteString(client, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The request leaves the kernel without passing through conn.Read, as
	// if its goroutine had not yet run past the read.
	req, err := http.ReadRequest(bufio.NewReader(c.Conn))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // past the (1ms) quiet window
	s.drainStart.Store(s.now() - int64(time.Second))
	open, _ := s.closeQuiet(s.now())
	if open != 1 {
		t.Errorf("closeQuiet: %d open, want the connection still counted until net/http closes it", open)
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"); err != nil {
		t.Fatalf("answering %s %s after closeQuiet: %v", req.Method, req.URL, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(client), nil)
	if err != nil {
		t.Fatalf("the client got no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("answer %d %q", resp.StatusCode, body)
	}
	// The reading side is shut: the server's goroutine reads EOF and
	// closes, which is what the drain waits for.
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("read after closeQuiet = %d, %v; want EOF", n, err)
	}
}
