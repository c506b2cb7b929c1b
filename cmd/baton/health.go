package main

import (
	"context"
	"net/http"

	"github.com/batonhq/baton/internal/health"
	"github.com/batonhq/baton/workers"
)

// withProbes serves /livez and /readyz beside the metrics handler on the
// metrics socket.
func withProbes(metricsHandler http.Handler, sup *workers.Supervisor) http.Handler {
	mux := http.NewServeMux()
	probes := health.Handler(probeSource{sup})
	mux.Handle(health.LivePath, probes)
	mux.Handle(health.ReadyPath, probes)
	mux.Handle("/", metricsHandler)
	return mux
}

// probeSource is the supervisor as the probes see it: Serving and Alive,
// and its STATUS= line for the body of a failed /readyz.
type probeSource struct{ *workers.Supervisor }

func (p probeSource) Why(ctx context.Context) string {
	snap, err := p.SnapshotContext(ctx)
	if err != nil {
		return err.Error()
	}
	return snap.Status
}
