package main

import (
	"context"
	"net/http"
	"strings"

	"github.com/batonhq/baton/internal/health"
	"github.com/batonhq/baton/workers"
)

// withProbes serves /livez and /readyz beside the metrics handler on the
// metrics socket.
func withProbes(metricsHandler http.Handler, src health.Source) http.Handler {
	mux := http.NewServeMux()
	probes := health.Handler(src)
	mux.Handle(health.LivePath, probes)
	mux.Handle(health.ReadyPath, probes)
	mux.Handle("/", metricsHandler)
	return mux
}

// probeSource is the supervisor as the probes see it.
func probeSource(sup *workers.Supervisor, minReady int) health.Source {
	if s, ok := any(sup).(health.Source); ok {
		return explained{s, sup}
	}
	return snapshotProbes{sup, minReady}
}

// explained adds the pool's status line to a failed /readyz.
type explained struct {
	health.Source
	sup *workers.Supervisor
}

func (e explained) Why(ctx context.Context) string { return statusLine(ctx, e.sup) }

// statusLine is the supervisor's STATUS= line, or "" when it does not
// answer within ctx. The snapshot request goes on in the background and
// ends with the supervisor at the latest.
func statusLine(ctx context.Context, sup *workers.Supervisor) string {
	c := make(chan string, 1)
	go func() {
		snap, ok := sup.Snapshot()
		if !ok {
			c <- "baton is stopping"
			return
		}
		c <- snap.Status
	}()
	select {
	case s := <-c:
		return s
	case <-ctx.Done():
		return ""
	}
}

// snapshotProbes stands in for a supervisor without Serving and Alive: it
// answers both from a snapshot, a round trip through the event loop. It
// cannot see a drain-delay, so it turns unready only once the workers are
// being stopped, and it keeps the min-ready of the config baton started
// with.
type snapshotProbes struct {
	sup      *workers.Supervisor
	minReady int
}

func (p snapshotProbes) Serving() bool {
	ctx, cancel := context.WithTimeout(context.Background(), health.LiveDeadline)
	defer cancel()
	snap, ok := snapshot(ctx, p.sup)
	if !ok || strings.HasPrefix(snap.Status, "stopping") {
		return false
	}
	return snap.Ready >= p.minReady
}

func (p snapshotProbes) Alive(ctx context.Context) error {
	if _, ok := snapshot(ctx, p.sup); !ok {
		if err := ctx.Err(); err != nil {
			return err
		}
		return workersStopped
	}
	return nil
}

func (p snapshotProbes) Why(ctx context.Context) string { return statusLine(ctx, p.sup) }

type probeError string

func (e probeError) Error() string { return string(e) }

const workersStopped = probeError("the supervisor has stopped")

func snapshot(ctx context.Context, sup *workers.Supervisor) (workers.Snapshot, bool) {
	type answer struct {
		snap workers.Snapshot
		ok   bool
	}
	c := make(chan answer, 1)
	go func() {
		s, ok := sup.Snapshot()
		c <- answer{s, ok}
	}()
	select {
	case a := <-c:
		return a.snap, a.ok
	case <-ctx.Done():
		return workers.Snapshot{}, false
	}
}
