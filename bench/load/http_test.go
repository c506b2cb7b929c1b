package load

import (
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testutil"
)

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
