package health

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Paths are the probe endpoints Handler serves.
const (
	LivePath  = "/livez"
	ReadyPath = "/readyz"
)

// LiveDeadline bounds the round trip through the event loop behind /livez:
// a loop that takes longer is reported dead. It is well below the 1s that
// probes allow by default (timeoutSeconds), so the answer arrives in time
// to be read.
const LiveDeadline = 500 * time.Millisecond

// Source is what the endpoints ask; the supervisor implements it.
type Source interface {
	// Serving is cheap and safe to call from any goroutine: at least
	// min-ready workers are ready and baton is neither draining nor
	// stopping.
	Serving() bool
	// Alive returns nil once the event loop answered a round trip, bounded
	// by ctx.
	Alive(ctx context.Context) error
}

// Explainer is optional: a Source that implements it says why it is not
// serving, for the body of a failed /readyz.
type Explainer interface {
	// Why describes the state that keeps baton from serving, bounded by ctx.
	Why(ctx context.Context) string
}

// Handler serves LivePath and ReadyPath for src. Both answer GET and HEAD,
// with text/plain bodies for the people who read probe failures
// (kubectl describe pod shows them).
func Handler(src Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(LivePath, func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r) {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), LiveDeadline)
		defer cancel()
		if err := src.Alive(ctx); err != nil {
			reply(w, http.StatusServiceUnavailable, fmt.Sprintf("not alive: %v", err))
			return
		}
		reply(w, http.StatusOK, "ok")
	})
	mux.HandleFunc(ReadyPath, func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r) {
			return
		}
		if src.Serving() {
			reply(w, http.StatusOK, "ok")
			return
		}
		why := "not ready"
		if e, ok := src.(Explainer); ok {
			ctx, cancel := context.WithTimeout(r.Context(), LiveDeadline)
			defer cancel()
			if s := e.Why(ctx); s != "" {
				why += ": " + s
			}
		}
		reply(w, http.StatusServiceUnavailable, why)
	})
	return mux
}

func allowed(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	reply(w, http.StatusMethodNotAllowed, r.Method+" not allowed")
	return false
}

func reply(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	// A probe's answer is about now: no cache between kubelet and baton
	// should keep it.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, body)
}
