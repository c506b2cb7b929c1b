package load

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// server is a real HTTP/1.1 server on 127.0.0.1 written for one test: each
// accepted connection runs handle, which reads requests and answers them
// byte for byte as the test needs.
type server struct {
	t   *testing.T
	ln  net.Listener
	url string

	mu    sync.Mutex
	reqs  []seen
	conns []net.Conn
	wg    sync.WaitGroup
}

// seen is a request the server read.
type seen struct {
	conn   int // the server's count of accepted connections, from 1
	line   string
	header map[string]string // lower-cased names
}

type srvConn struct {
	s  *server
	n  int
	nc net.Conn
	br *bufio.Reader
}

func serve(t *testing.T, handle func(c *srvConn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, ln: ln, url: "http://" + ln.Addr().String() + "/hello?x=1"}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for n := 1; ; n++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, nc)
			s.mu.Unlock()
			s.wg.Add(1)
			go func(n int) {
				defer s.wg.Done()
				defer nc.Close()
				handle(&srvConn{s: s, n: n, nc: nc, br: bufio.NewReader(nc)})
			}(n)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// requests is what the server has read so far.
func (s *server) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.reqs...)
}

// read reads one request head; false when the client closed or failed.
func (c *srvConn) read() bool {
	line, err := c.br.ReadString('\n')
	if err != nil {
		return false
	}
	r := seen{conn: c.n, line: strings.TrimRight(line, "\r\n"), header: map[string]string{}}
	for {
		h, err := c.br.ReadString('\n')
		if err != nil {
			return false
		}
		h = strings.TrimRight(h, "\r\n")
		if h == "" {
			break
		}
		name, value, _ := strings.Cut(h, ":")
		r.header[strings.ToLower(name)] = strings.TrimSpace(value)
	}
	c.s.mu.Lock()
	c.s.reqs = append(c.s.reqs, r)
	c.s.mu.Unlock()
	return true
}

func (c *srvConn) write(answer string) {
	if _, err := io.WriteString(c.nc, answer); err != nil {
		c.s.t.Errorf("server write: %v", err)
	}
}

// answer is a complete 200 with a Content-Length body.
func answer(body string) string {
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}
