package load

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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

// Chunked bodies are read to their end (extensions, trailers) so that the
// connection carries the next request; the first line spans chunks.
func TestChunkedBodies(t *testing.T) {
	testutil.CheckFDLeaks(t)
	s := serve(t, func(c *srvConn) {
		for c.read() {
			c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"a;ext=1\r\nhello from\r\n" +
				"D\r\n worker pid 7\r\n" +
				"6\r\n\nmore\n\r\n" +
				"0\r\nX-Trailer: yes\r\n\r\n")
		}
	})
	r, sum := run(t, Options{URL: s.url, Requests: 3, KeepAlive: true, BodyLine: true})
	if got := kinds(r); got != "ok ok/reused ok/reused" {
		t.Fatalf("%s: %s", got, sum)
	}
	for _, x := range r.Records {
		if x.Line != "hello from worker pid 7" {
			t.Errorf("line %q", x.Line)
		}
	}
}

// A server that says "Connection: close" and then leaves the connection
// open: the client closes it and opens a new one rather than waiting for
// an answer that will not come.
func TestConnectionCloseIsHonoured(t *testing.T) {
	testutil.CheckFDLeaks(t)
	s := serve(t, func(c *srvConn) {
		if !c.read() {
			return
		}
		c.write("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nok\n")
		c.read() // a second request here would never be answered
	})
	r, sum := run(t, Options{URL: s.url, Requests: 3, KeepAlive: true, Timeout: 5 * time.Second})
	if got := kinds(r); got != "ok ok ok" || sum.Conns != 3 {
		t.Fatalf("%s: %s", got, sum)
	}
	if n := len(s.requests()); n != 3 {
		t.Errorf("the server read %d requests: one came on a connection it had closed", n)
	}
}

// Answers framed other ways: by the server's close, HTTP/1.0, interim 1xx,
// 204; and answers that are not HTTP, or cut short.
func TestFraming(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		keep         bool // the server keeps the connection after answering
		want         string
		line         string
	}{
		{"close-delimited", "HTTP/1.1 200 OK\r\n\r\nto the end\n", false, "ok ok", "to the end"},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n", true, "ok ok", "ok"},
		{"http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nok\n", true, "ok ok/reused", "ok"},
		{"100 continue", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n", true, "ok ok/reused", "ok"},
		{"204", "HTTP/1.1 204 No Content\r\n\r\n", true, "ok ok/reused", ""},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", true, "other other", ""},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nok\n", true, "other other", ""},
		{"cut body", "HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\nshort\n", false, "eof eof", "short"},
		{"cut chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort", false, "eof eof", "short"},
		{"closed unanswered", "", false, "eof eof", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.CheckFDLeaks(t)
			s := serve(t, func(c *srvConn) {
				for c.read() {
					c.write(tc.answer)
					if !tc.keep {
						return
					}
				}
			})
			r, _ := run(t, Options{URL: s.url, Requests: 2, KeepAlive: true, BodyLine: true})
			if got := kinds(r); got != tc.want {
				t.Errorf("got %s, want %s (%v)", got, tc.want, r.Records[0].Err)
			}
			if r.Records[0].Line != tc.line {
				t.Errorf("line %q, want %q", r.Records[0].Line, tc.line)
			}
		})
	}
}

// At a fixed rate each request starts on its schedule, and its latency
// counts from there.
func TestFixedRateKeepsTheSchedule(t *testing.T) {
	testutil.CheckFDLeaks(t)
	s := serve(t, func(c *srvConn) {
		for c.read() {
			c.write(answer("ok\n"))
		}
	})
	r, sum := run(t, Options{URL: s.url, Clients: 3, Rate: 500, Requests: 12, KeepAlive: true})
	if sum.OK != 12 || r.Missed != 0 {
		t.Fatalf("%s", sum)
	}
	for i, x := range r.Records {
		if want := r.Begin.Add(time.Duration(i) * 2 * time.Millisecond); !x.Start.Equal(want) {
			t.Errorf("request %d scheduled at %s, want %s", i, x.Start.Sub(r.Begin), want.Sub(r.Begin))
		}
	}
}

// Stop and the context end a run; no request is lost or left running.
func TestStopAndContextEndARun(t *testing.T) {
	testutil.CheckFDLeaks(t)
	s := serve(t, func(c *srvConn) {
		for c.read() {
			c.write(answer("ok\n"))
		}
	})
	for _, rate := range []float64{0, 1000} {
		var progress atomic.Int64
		l, err := Start(context.Background(), Options{URL: s.url, Clients: 4, Rate: rate, KeepAlive: true, Progress: func(Record) { progress.Add(1) }})
		if err != nil {
			t.Fatal(err)
		}
		if !testutil.Eventually(t, 30*time.Second, func() bool { return l.OK() >= 50 }) {
			t.Fatalf("rate %g: stalled at %d ok, %d failed", rate, l.OK(), l.Failed())
		}
		r := l.Stop()
		sum := r.Summary()
		if sum.OK < 50 || sum.Failed != 0 || int64(sum.OK) != l.OK() || progress.Load() != int64(sum.Requests) {
			t.Errorf("rate %g: %s; counters %d ok, progress %d", rate, sum, l.OK(), progress.Load())
		}
		if l.Stop() != r {
			t.Error("a second Stop gave another result")
		}

		ctx, cancel := context.WithCancel(context.Background())
		l, err = Start(ctx, Options{URL: s.url, Clients: 2, Rate: rate})
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 30*time.Second, func() bool { return l.OK() >= 10 })
		cancel()
		if sum := l.Wait().Summary(); sum.OK < 10 || sum.Failed != 0 {
			t.Errorf("rate %g, cancelled: %s", rate, sum)
		}
	}
	// Duration ends a run by itself.
	r, err := Run(context.Background(), Options{URL: s.url, Duration: 100 * time.Millisecond, KeepAlive: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum := r.Summary(); sum.OK == 0 || sum.Failed != 0 {
		t.Errorf("duration: %s", sum)
	}
}

// Bad options are refused before anything starts.
func TestOptionsAreChecked(t *testing.T) {
	for _, o := range []Options{
		{URL: "https://127.0.0.1/"},
		{URL: "127.0.0.1:80"},
		{URL: "http:///path"},
		{URL: "http://127.0.0.1/", Clients: -1},
		{URL: "http://127.0.0.1/", Rate: -5},
		{URL: "http://127.0.0.1/", Timeout: -time.Second},
	} {
		if _, err := Start(context.Background(), o); err == nil || !strings.HasPrefix(err.Error(), "load options: ") {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

// The CSV has a header and one line per request.
func TestWriteCSV(t *testing.T) {
	begin := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &Result{Begin: begin, End: begin.Add(time.Second), Records: []Record{
		{Start: begin, Latency: 1500 * time.Microsecond, Status: 200, Conn: 1, Line: "hello, pid 4"},
		{Start: begin.Add(time.Millisecond), Latency: time.Millisecond, Kind: Reset, Reused: true, Conn: 1, Err: &Error{Kind: Reset, Op: "read", Err: syscall.ECONNRESET}},
	}}
	var b bytes.Buffer
	if err := r.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"start", "offset_us", "latency_us", "kind", "status", "reused", "conn", "error", "line"},
		{"2026-01-02T03:04:05Z", "0", "1500", "ok", "200", "false", "1", "", "hello, pid 4"},
		{"2026-01-02T03:04:05.001Z", "1000", "1000", "reset", "0", "true", "1", "reset: read: connection reset by peer", ""},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %q", rows)
	}
	for i := range want {
		if strings.Join(rows[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("row %d: %q, want %q", i, rows[i], want[i])
		}
	}
}

// Percentiles, windows and failures by nearest window on a made-up run.
func TestSummaryAndWindows(t *testing.T) {
	begin := time.Now()
	r := &Result{Begin: begin, End: begin.Add(10 * time.Second)}
	for i := 1; i <= 100; i++ {
		x := Record{Start: begin.Add(time.Duration(i) * 100 * time.Millisecond), Latency: time.Duration(i) * time.Millisecond, Conn: int64(i%4 + 1)}
		if i == 30 || i == 31 || i == 95 {
			x.Kind, x.Reused = Reset, i == 31
		}
		r.Records = append(r.Records, x)
	}
	s := r.Summary()
	if s.P50 != 50*time.Millisecond || s.P90 != 90*time.Millisecond || s.P99 != 99*time.Millisecond || s.Max != 100*time.Millisecond {
		t.Errorf("percentiles %s", s)
	}
	if s.Requests != 100 || s.OK != 97 || s.Failed != 3 || s.ByKind[Reset] != 3 || s.FailedReused != 1 || s.Conns != 4 || s.PerSecond != 10 {
		t.Errorf("counts %s", s)
	}
	if got := s.FailedKinds(); got != "reset 3" {
		t.Errorf("FailedKinds %q", got)
	}
	w := After(begin.Add(2*time.Second), time.Second) // requests 20..29
	if got := r.Worst(w); got != 29*time.Millisecond {
		t.Errorf("worst in window %s", got)
	}
	if in := r.Within(w); len(in.Records) != 10 || in.Summary().Max != 29*time.Millisecond {
		t.Errorf("within: %d records", len(in.Records))
	}
	if out := r.Outside(w, After(begin.Add(9*time.Second), 2*time.Second)); len(out.Records) != 79 || out.Summary().Max != 89*time.Millisecond {
		t.Errorf("outside: %d records, max %s", len(out.Records), out.Summary().Max)
	}
	if got := r.FailedNearest([]Window{w, After(begin.Add(8*time.Second), time.Second)}); len(got) != 2 || got[0] != 2 || got[1] != 1 {
		t.Errorf("failed nearest %v", got)
	}
	if got := len(r.Failures()); got != 3 {
		t.Errorf("%d failures", got)
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
