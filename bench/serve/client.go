package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// kinds are the failure kinds, in report order: refused (ECONNREFUSED),
// reset (ECONNRESET, EPIPE), closed (the server closed the connection
// without an answer), timeout, non-2xx, other.
var kinds = []string{"refused", "reset", "closed", "timeout", "non-2xx", "other"}

// tally is what a load run saw.
type tally struct {
	requests int
	failed   map[string]int
	firstErr map[string]string
	// closes counts answers with Connection: close (a drain at work).
	closes    int
	latencies []time.Duration
}

func (t *tally) add(o *tally) {
	t.requests += o.requests
	t.closes += o.closes
	t.latencies = append(t.latencies, o.latencies...)
	for k, n := range o.failed {
		t.failed[k] += n
		if _, ok := t.firstErr[k]; !ok {
			t.firstErr[k] = o.firstErr[k]
		}
	}
}

func (t *tally) failedTotal() int {
	n := 0
	for _, k := range t.failed {
		n += k
	}
	return n
}

func newTally() *tally { return &tally{failed: map[string]int{}, firstErr: map[string]string{}} }

// drive drives GET path on addr from conns keep-alive connections until
// stop is closed. A connection is replaced when the server answers
// Connection: close or fails; a failed request is counted, never retried.
// think, if not zero, is the most a client waits between its requests
// (uniformly at random, every other client), so that connections sit idle.
func drive(addr, path string, conns int, think time.Duration, stop <-chan struct{}) *tally {
	var mu sync.Mutex
	total := newTally()
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := newTally()
			c := &rawConn{addr: addr, req: []byte("GET " + path + " HTTP/1.1\r\nHost: bench\r\n\r\n")}
			defer c.close()
			for {
				select {
				case <-stop:
					mu.Lock()
					total.add(t)
					mu.Unlock()
					return
				default:
				}
				if think > 0 && i%2 == 1 {
					time.Sleep(rand.N(think))
				}
				start := time.Now()
				closed, err := c.do()
				t.requests++
				if err != nil {
					k := classify(err)
					t.failed[k]++
					if _, ok := t.firstErr[k]; !ok {
						t.firstErr[k] = err.Error()
					}
					continue
				}
				t.latencies = append(t.latencies, time.Since(start))
				if closed {
					t.closes++
				}
			}
		}()
	}
	wg.Wait()
	return total
}

// rawConn is one client connection, dialled when needed.
type rawConn struct {
	addr string
	req  []byte
	c    net.Conn
	br   *bufio.Reader
	tp   *textproto.Reader
}

func (r *rawConn) close() {
	if r.c != nil {
		r.c.Close()
		r.c = nil
	}
}

var errStatus = errors.New("non-2xx")

// do sends one request and reads its answer; closed says the server
// closed the connection after it, as it announced.
func (r *rawConn) do() (closed bool, err error) {
	if r.c == nil {
		c, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
		if err != nil {
			return false, err
		}
		r.c, r.br = c, bufio.NewReader(c)
		r.tp = textproto.NewReader(r.br)
	}
	defer func() {
		if err != nil || closed {
			r.close()
		}
	}()
	if err := r.c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return false, err
	}
	if _, err := r.c.Write(r.req); err != nil {
		return false, err
	}
	line, err := r.tp.ReadLine()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return false, fmt.Errorf("closed before the status line: %w", err)
		}
		return false, err
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	status, perr := strconv.Atoi(code)
	if !strings.HasPrefix(proto, "HTTP/1.") || perr != nil {
		return false, fmt.Errorf("bad status line %q", line)
	}
	hdr, err := r.tp.ReadMIMEHeader()
	if err != nil {
		return false, err
	}
	if te := hdr.Get("Transfer-Encoding"); te != "" {
		return false, fmt.Errorf("transfer-encoding %q not supported here", te)
	}
	n, err := strconv.Atoi(hdr.Get("Content-Length"))
	if err != nil {
		return false, fmt.Errorf("no content length: %v", hdr)
	}
	if _, err := io.CopyN(io.Discard, r.br, int64(n)); err != nil {
		return false, fmt.Errorf("body: %w", err)
	}
	closed = strings.EqualFold(hdr.Get("Connection"), "close")
	if status < 200 || status > 299 {
		return closed, fmt.Errorf("%w: %d", errStatus, status)
	}
	return closed, nil
}

func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed"
	case errors.Is(err, errStatus):
		return "non-2xx"
	}
	return "other"
}
