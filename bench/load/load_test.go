package load

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testutil"
)

func run(t *testing.T, o Options) (*Result, Summary) {
	t.Helper()
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Records) != o.Requests {
		t.Fatalf("%d records for %d requests", len(r.Records), o.Requests)
	}
	return r, r.Summary()
}

func kinds(r *Result) string {
	var s []string
	for _, x := range r.Records {
		k := x.Kind.String()
		if x.Reused {
			k += "/reused"
		}
		s = append(s, k)
	}
	return strings.Join(s, " ")
}

// A server that keeps connections open: every request succeeds and each
// client keeps its one connection. The server answers nothing until both
// clients have connected, so that neither can do all the work.
func TestKeepAliveReusesConnections(t *testing.T) {
	testutil.CheckFDLeaks(t)
	var arrived sync.WaitGroup
	arrived.Add(2)
	s := serve(t, func(c *srvConn) {
		if c.n <= 2 {
			arrived.Done()
			arrived.Wait()
		}
		for c.read() {
			c.write(answer("hello from worker 1 pid 42\nsecond line\n"))
		}
	})
	r, sum := run(t, Options{URL: s.url, Clients: 2, Requests: 20, KeepAlive: true, BodyLine: true})
	if sum.OK != 20 || sum.Failed != 0 {
		t.Fatalf("%s\n%s", sum, kinds(r))
	}
	if sum.Conns != 2 {
		t.Errorf("%d connections for 2 clients with keep-alive", sum.Conns)
	}
	reused := 0
	for _, x := range r.Records {
		if x.Reused {
			reused++
		}
		if x.Line != "hello from worker 1 pid 42" || x.Status != 200 || x.Err != nil {
			t.Errorf("record %+v", x)
		}
	}
	if reused != 18 {
		t.Errorf("%d requests on reused connections, want 18", reused)
	}
	reqs := s.requests()
	if len(reqs) != 20 {
		t.Fatalf("the server read %d requests", len(reqs))
	}
	host := strings.TrimPrefix(strings.Split(s.url, "/")[2], "http://")
	for _, q := range reqs {
		if q.line != "GET /hello?x=1 HTTP/1.1" || q.header["host"] != host || q.header["connection"] != "" {
			t.Errorf("request %q %v", q.line, q.header)
		}
	}
}

// Keep-alive off: a fresh connection per request, each saying
// "Connection: close"; a Host option replaces the URL's host.
func TestKeepAliveOffOpensAConnectionPerRequest(t *testing.T) {
	testutil.CheckFDLeaks(t)
	s := serve(t, func(c *srvConn) {
		for c.read() {
			c.write(answer("ok\n"))
		}
	})
	r, sum := run(t, Options{URL: s.url, Host: "example.test", Clients: 2, Requests: 10})
	if sum.OK != 10 || sum.Conns != 10 {
		t.Fatalf("%s\n%s", sum, kinds(r))
	}
	for _, x := range r.Records {
		if x.Reused {
			t.Errorf("reused connection %d without keep-alive", x.Conn)
		}
	}
	conns := map[int]bool{}
	for _, q := range s.requests() {
		conns[q.conn] = true
		if q.header["connection"] != "close" || q.header["host"] != "example.test" {
			t.Errorf("headers %v", q.header)
		}
	}
	if len(conns) != 10 {
		t.Errorf("the server saw %d connections", len(conns))
	}
}

// A server that closes an idle keep-alive connection just as the client
// sends its next request: the request fails, on a reused connection, and
// is not sent again. The server waits for the request to arrive before it
// closes, so the race is won the same way every time: after reading it
// (FIN: eof) or with unread bytes and SO_LINGER 0 (RST: reset).
func TestCloseAsTheClientSendsFailsOnTheReusedConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Kind
	}{{"fin", EOF}, {"rst", Reset}} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.CheckFDLeaks(t)
			s := serve(t, func(c *srvConn) {
				if !c.read() {
					return
				}
				c.write(answer("first\n"))
				if tc.want == EOF {
					c.read()
				} else {
					_, _ = c.br.Peek(1)
					_ = c.nc.(*net.TCPConn).SetLinger(0)
				}
				c.nc.Close()
			})
			r, sum := run(t, Options{URL: s.url, Requests: 4, KeepAlive: true})
			want := "ok " + tc.want.String() + "/reused ok " + tc.want.String() + "/reused"
			if got := kinds(r); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
			if sum.Failed != 2 || sum.FailedReused != 2 || sum.ByKind[tc.want] != 2 || sum.Conns != 2 {
				t.Errorf("summary %s", sum)
			}
			for i, x := range r.Records {
				if wantConn := int64(i/2 + 1); x.Conn != wantConn {
					t.Errorf("request %d on conn %d, want %d", i, x.Conn, wantConn)
				}
				var e *Error
				if x.Kind != OK && (!errors.As(x.Err, &e) || e.Kind != x.Kind || e.Op != "read") {
					t.Errorf("request %d: error %v", i, x.Err)
				}
			}
			if tc.want == Reset && !errors.Is(r.Records[1].Err, syscall.ECONNRESET) {
				t.Errorf("reset: %v", r.Records[1].Err)
			}
			// The failed requests were not sent again: the server read
			// exactly 4 (2 in the rst case, which closes unread).
			wantRead := 4
			if tc.want == Reset {
				wantRead = 2
			}
			if n := len(s.requests()); n != wantRead {
				t.Errorf("the server read %d requests, want %d", n, wantRead)
			}
		})
	}
}

// Nothing listening: every request is refused, on no connection.
func TestRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/"
	ln.Close()
	r, sum := run(t, Options{URL: url, Requests: 3, KeepAlive: true})
	if sum.ByKind[Refused] != 3 || sum.Conns != 0 {
		t.Fatalf("%s\n%s", sum, kinds(r))
	}
	for _, x := range r.Records {
		if x.Reused || x.Conn != 0 || !errors.Is(x.Err, syscall.ECONNREFUSED) {
			t.Errorf("record %+v", x)
		}
	}
}

// A server that reads requests and never answers: timeouts, each on a
// fresh connection since a failed one is closed.
func TestTimeout(t *testing.T) {
	testutil.CheckFDLeaks(t)
	s := serve(t, func(c *srvConn) {
		c.read()
		c.read() // until the client closes
	})
	r, sum := run(t, Options{URL: s.url, Requests: 2, KeepAlive: true, Timeout: 200 * time.Millisecond})
	if got := kinds(r); got != "timeout timeout" {
		t.Fatalf("%s: %s", got, sum)
	}
	if sum.Conns != 2 {
		t.Errorf("%d connections", sum.Conns)
	}
}

// Non-2xx answers are failures of their own kind, and the connection they
// came on stays usable.
func TestNon2xx(t *testing.T) {
	testutil.CheckFDLeaks(t)
	s := serve(t, func(c *srvConn) {
		for c.read() {
			c.write("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nbusy\n")
		}
	})
	r, sum := run(t, Options{URL: s.url, Requests: 3, KeepAlive: true, BodyLine: true})
	if got := kinds(r); got != "non-2xx non-2xx/reused non-2xx/reused" {
		t.Fatalf("%s: %s", got, sum)
	}
	for _, x := range r.Records {
		var se StatusError
		if x.Status != 503 || !errors.As(x.Err, &se) || se != 503 || x.Line != "busy" {
			t.Errorf("record %+v", x)
		}
	}
}

// Go's own server, as the example worker uses it: answers framed by length
// and, when flushed early, by chunks, over kept connections.
func TestAgainstNetHTTPServer(t *testing.T) {
	testutil.CheckFDLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from worker 1 pid 9\n")
		if r.URL.Query().Get("flush") == "1" {
			w.(http.Flusher).Flush()
			io.WriteString(w, strings.Repeat("x", 100000))
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	for _, path := range []string{"/", "/?flush=1"} {
		r, sum := run(t, Options{URL: "http://" + ln.Addr().String() + path, Clients: 4, Requests: 200, KeepAlive: true, BodyLine: true})
		if sum.OK != 200 || sum.Conns > 4 || sum.Conns < 1 {
			t.Fatalf("%s: %s", path, sum)
		}
		for _, x := range r.Records {
			if x.Line != "hello from worker 1 pid 9" {
				t.Fatalf("%s: line %q", path, x.Line)
			}
		}
	}
}
