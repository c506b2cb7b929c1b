package serve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// serveWithDeadline runs the handler in its own goroutine under a context
// with the deadline. If the handler is not done by then and wrote nothing,
// the client is answered 504 and the connection freed; the handler goes on
// until it returns (its context is cancelled), still reported as running,
// so that baton's request clock sees a handler that never ends.
func (s *Server) serveWithDeadline(w http.ResponseWriter, r *http.Request, tok token) {
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	tw := &timeoutWriter{w: w, h: make(http.Header)}
	done := make(chan struct{})
	var panicked any
	go func() {
		defer func() {
			p := recover()
			tw.mu.Lock()
			tw.done = true
			overdue, abandoned := tw.overdue, tw.timedOut
			if p != nil && !abandoned {
				panicked = handlerPanic{p, debug.Stack()}
			}
			tw.mu.Unlock()
			if overdue {
				s.overdue.Add(-1)
			}
			if p != nil && abandoned && p != http.ErrAbortHandler {
				s.log.Error("serve: handler panicked after its deadline", "method", r.Method, "target", r.RequestURI, "panic", p, "stack", string(debug.Stack()))
			}
			s.end(tok)
			close(done)
		}()
		s.handler.ServeHTTP(tw, r.WithContext(ctx))
	}()

	select {
	case <-done:
		tw.finish(panicked)
		return
	case <-ctx.Done():
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The client went away first; the deadline still holds.
		t := time.NewTimer(time.Until(deadlineOf(ctx, s.timeout)))
		defer t.Stop()
		select {
		case <-done:
			tw.finish(panicked)
			return
		case <-t.C:
		}
	}
	s.pastDeadline(tw, r)
	if tw.timedOut {
		return // answered; the handler is on its own now
	}
	// It had started its response: nothing to do but let it finish.
	<-done
	tw.finish(panicked)
}

func deadlineOf(ctx context.Context, d time.Duration) time.Time {
	if t, ok := ctx.Deadline(); ok {
		return t
	}
	return time.Now().Add(d)
}

// pastDeadline answers 504 if the handler has not written yet, and counts
// the request overdue until its handler returns.
func (s *Server) pastDeadline(tw *timeoutWriter, r *http.Request) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.done {
		return
	}
	tw.overdue = true
	s.overdue.Add(1)
	if tw.wroteHeader || tw.hijacked {
		s.log.Warn("serve: request past its deadline after its response began; its context is cancelled", "method", r.Method, "target", r.RequestURI, "deadline", s.timeout)
		return
	}
	tw.timedOut = true
	s.timedOut.Add(1)
	h := tw.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	tw.w.WriteHeader(http.StatusGatewayTimeout)
	fmt.Fprintf(tw.w, "request exceeded its deadline of %s\n", s.timeout)
	s.log.Warn("serve: request past its deadline; answered 504", "method", r.Method, "target", r.RequestURI, "deadline", s.timeout)
}

type handlerPanic struct {
	value any
	stack []byte
}

// timeoutWriter stands between the handler and net/http's writer so that
// the deadline can answer in its place: everything goes through mu, and
// after the 504 the handler's writes fail with http.ErrHandlerTimeout. The
// handler gets its own header map, copied when it writes its header, so
// that a handler still running cannot touch the 504's.
type timeoutWriter struct {
	w           http.ResponseWriter
	h           http.Header
	mu          sync.Mutex
	wroteHeader bool
	timedOut    bool // answered 504 in the handler's place
	overdue     bool // counted in Server.overdue
	hijacked    bool
	done        bool // the handler returned
}

func (tw *timeoutWriter) Header() http.Header { return tw.h }

func (tw *timeoutWriter) WriteHeader(code int) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.writeHeaderLocked(code)
}

func (tw *timeoutWriter) writeHeaderLocked(code int) {
	if tw.timedOut || tw.wroteHeader || tw.hijacked {
		return
	}
	dst := tw.w.Header()
	for k, v := range tw.h {
		dst[k] = v
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		tw.w.WriteHeader(code) // informational: the real header is still to come
		return
	}
	tw.wroteHeader = true
	tw.w.WriteHeader(code)
}

func (tw *timeoutWriter) Write(p []byte) (int, error) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.timedOut {
		return 0, http.ErrHandlerTimeout
	}
	if !tw.wroteHeader {
		tw.writeHeaderLocked(http.StatusOK)
	}
	return tw.w.Write(p)
}

// FlushError flushes through to the client (http.ResponseController).
func (tw *timeoutWriter) FlushError() error {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.timedOut {
		return http.ErrHandlerTimeout
	}
	if !tw.wroteHeader {
		tw.writeHeaderLocked(http.StatusOK)
	}
	return http.NewResponseController(tw.w).Flush()
}

// Flush is http.Flusher's, for handlers that assert it.
func (tw *timeoutWriter) Flush() { _ = tw.FlushError() }

// Hijack hands the connection over; the deadline no longer answers for
// it.
func (tw *timeoutWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.timedOut {
		return nil, nil, http.ErrHandlerTimeout
	}
	c, rw, err := http.NewResponseController(tw.w).Hijack()
	if err == nil {
		tw.hijacked = true
	}
	return c, rw, err
}

// SetReadDeadline and SetWriteDeadline pass through for
// http.ResponseController.
func (tw *timeoutWriter) SetReadDeadline(t time.Time) error {
	return http.NewResponseController(tw.w).SetReadDeadline(t)
}

func (tw *timeoutWriter) SetWriteDeadline(t time.Time) error {
	return http.NewResponseController(tw.w).SetWriteDeadline(t)
}

// EnableFullDuplex passes through for http.ResponseController.
func (tw *timeoutWriter) EnableFullDuplex() error {
	return http.NewResponseController(tw.w).EnableFullDuplex()
}

// finish runs in ServeHTTP once the handler returned in time: trailers
// set after the header are carried over, and a panic goes on up to
// net/http, which logs it and closes the connection.
func (tw *timeoutWriter) finish(panicked any) {
	if p, ok := panicked.(handlerPanic); ok {
		if p.value == http.ErrAbortHandler {
			panic(p.value)
		}
		panic(fmt.Sprintf("%v\n\nhandler goroutine:\n%s", p.value, p.stack))
	}
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.timedOut || tw.hijacked {
		return
	}
	dst := tw.w.Header()
	for k, v := range tw.h {
		if strings.HasPrefix(k, http.TrailerPrefix) || declaredTrailer(tw.h, k) {
			dst[k] = v
		}
	}
}

func declaredTrailer(h http.Header, key string) bool {
	for _, v := range h.Values("Trailer") {
		for _, t := range strings.Split(v, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(t)) == key {
				return true
			}
		}
	}
	return false
}
