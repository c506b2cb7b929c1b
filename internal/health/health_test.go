package health

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fake is a Source whose answers the test sets.
type fake struct {
	serving atomic.Bool
	alive   func(ctx context.Context) error
	why     string
}

func (f *fake) Serving() bool                   { return f.serving.Load() }
func (f *fake) Alive(ctx context.Context) error { return f.alive(ctx) }

type explained struct{ *fake }

func (e explained) Why(context.Context) string { return e.why }

func get(t *testing.T, h http.Handler, method, path string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body), rec.Result().Header
}

func TestReadyzFollowsServing(t *testing.T) {
	f := &fake{alive: func(context.Context) error { return nil }, why: "stopping: 2 workers left"}
	for _, h := range []struct {
		name    string
		handler http.Handler
		want    string
	}{
		{"plain", Handler(f), "not ready\n"},
		{"explained", Handler(explained{f}), "not ready: stopping: 2 workers left\n"},
	} {
		f.serving.Store(true)
		code, body, hdr := get(t, h.handler, http.MethodGet, ReadyPath)
		if code != http.StatusOK || body != "ok\n" || hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: serving: %d %q %v", h.name, code, body, hdr)
		}
		f.serving.Store(false)
		code, body, _ = get(t, h.handler, http.MethodGet, ReadyPath)
		if code != http.StatusServiceUnavailable || body != h.want {
			t.Errorf("%s: not serving: %d %q, want 503 %q", h.name, code, body, h.want)
		}
	}
}

func TestLivezFollowsTheLoop(t *testing.T) {
	var fail atomic.Bool
	f := &fake{alive: func(ctx context.Context) error {
		if fail.Load() {
			return errors.New("supervisor stopped")
		}
		return nil
	}}
	h := Handler(f)
	// Liveness is not readiness: a draining pool is alive.
	f.serving.Store(false)
	if code, body, _ := get(t, h, http.MethodGet, LivePath); code != http.StatusOK || body != "ok\n" {
		t.Errorf("alive: %d %q", code, body)
	}
	fail.Store(true)
	if code, body, _ := get(t, h, http.MethodGet, LivePath); code != http.StatusServiceUnavailable || body != "not alive: supervisor stopped\n" {
		t.Errorf("dead: %d %q", code, body)
	}
}

func TestLivezBoundsAStuckLoop(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var deadline atomic.Value
	f := &fake{alive: func(ctx context.Context) error {
		d, _ := ctx.Deadline()
		deadline.Store(d)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-release:
			return nil
		}
	}}
	before := time.Now()
	code, body, _ := get(t, Handler(f), http.MethodGet, LivePath)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "deadline exceeded") {
		t.Errorf("stuck loop: %d %q", code, body)
	}
	d, ok := deadline.Load().(time.Time)
	if !ok || d.Before(before) || d.After(before.Add(LiveDeadline+time.Second)) {
		t.Errorf("the loop was asked with deadline %v (ok %v), want about %s after %v", d, ok, LiveDeadline, before)
	}
}

func TestMethodsAndPaths(t *testing.T) {
	f := &fake{alive: func(context.Context) error { return nil }}
	f.serving.Store(true)
	h := Handler(f)
	// (net/http drops a HEAD answer's body on the wire; the recorder keeps it.)
	if code, _, _ := get(t, h, http.MethodHead, ReadyPath); code != http.StatusOK {
		t.Errorf("HEAD: %d", code)
	}
	code, _, hdr := get(t, h, http.MethodPost, LivePath)
	if code != http.StatusMethodNotAllowed || hdr.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d %v", code, hdr)
	}
	if code, _, _ := get(t, h, http.MethodGet, "/healthz"); code != http.StatusNotFound {
		t.Errorf("unknown path: %d", code)
	}
}
