package metrics

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/internal/accept"
	"github.com/batonhq/baton/internal/logging"
	"github.com/batonhq/baton/internal/procfs"
	"github.com/batonhq/baton/workers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Source returns the pool's snapshot; ok is false once baton stops.
type Source func() (workers.Snapshot, bool)

var (
	descWorkers   = prometheus.NewDesc("baton_workers", "Workers by state.", []string{"state"}, nil)
	descWanted    = prometheus.NewDesc("baton_workers_wanted", "Workers the config asks for.", nil, nil)
	descGen       = prometheus.NewDesc("baton_generation", "The generation serving.", nil, nil)
	descSpawns    = prometheus.NewDesc("baton_worker_spawns_total", "Workers spawned.", nil, nil)
	descExits     = prometheus.NewDesc("baton_worker_exits_total", "Worker exits by reason: crash, exit, boot_timeout, watchdog, request_timeout, recycle, replaced, scaled_down, cancelled, stopped.", []string{"reason"}, nil)
	descHeartbeat = prometheus.NewDesc("baton_worker_heartbeat_age_seconds", "Time since the worker's last WATCHDOG=1 (or readiness).", []string{"slot", "pid", "generation"}, nil)
	descAge       = prometheus.NewDesc("baton_worker_age_seconds", "Time since the worker was spawned.", []string{"slot", "pid", "generation"}, nil)
	descRSS       = prometheus.NewDesc("baton_worker_resident_memory_bytes", "The worker's resident memory.", []string{"slot", "pid", "generation"}, nil)
	descRequest   = prometheus.NewDesc("baton_worker_oldest_request_seconds", "Age of the oldest reported request in flight.", []string{"slot", "pid", "generation"}, nil)
	descReloads   = prometheus.NewDesc("baton_reloads_total", "Finished reloads by result.", []string{"result"}, nil)
	descReloadDur = prometheus.NewDesc("baton_reload_duration_seconds", "Duration of finished reloads.", nil, nil)
	descRecycled  = prometheus.NewDesc("baton_workers_recycled_total", "Workers recycled (max-lifetime, max-memory, X_BATON_RECYCLE).", nil, nil)
	descDropped   = prometheus.NewDesc("baton_notifications_dropped_total", "sd_notify datagrams dropped by kind.", []string{"kind"}, nil)
)

// exitReasons are always exported, so that rates work from zero.
var exitReasons = []string{"crash", "exit", "boot_timeout", "watchdog", "request_timeout", "recycle", "replaced", "scaled_down", "cancelled", "stopped"}

type collector struct{ src Source }

// NewCollector returns a collector over src.
func NewCollector(src Source) prometheus.Collector { return collector{src} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWorkers, descWanted, descGen, descSpawns, descExits, descHeartbeat, descAge, descRSS, descRequest, descReloads, descReloadDur, descRecycled, descDropped} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	snap, ok := c.src()
	if !ok {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	states := map[string]int{workers.Starting.Phase(): 0, workers.Ready.Phase(): 0, workers.Stopping.Phase(): 0}
	for _, w := range snap.Workers {
		states[w.State.Phase()]++
		labels := []string{strconv.Itoa(w.Slot), strconv.Itoa(w.PID), strconv.Itoa(w.Generation)}
		gauge(descAge, snap.Taken.Sub(w.Spawned).Seconds(), labels...)
		if !w.LastHeartbeat.IsZero() {
			gauge(descHeartbeat, snap.Taken.Sub(w.LastHeartbeat).Seconds(), labels...)
		}
		if !w.OldestRequest.IsZero() {
			gauge(descRequest, snap.Taken.Sub(w.OldestRequest).Seconds(), labels...)
		}
		if rss, err := procfs.RSS(w.PID); err == nil {
			gauge(descRSS, float64(rss), labels...)
		}
	}
	for st, n := range states {
		gauge(descWorkers, float64(n), st)
	}
	gauge(descWanted, float64(snap.Wanted))
	gauge(descGen, float64(snap.Generation))
	counter(descSpawns, float64(snap.Spawns))
	for _, r := range exitReasons {
		counter(descExits, float64(snap.Exits[r]), r)
	}
	counter(descReloads, float64(snap.ReloadsOK), "ok")
	counter(descReloads, float64(snap.ReloadsFailed), "failed")
	ch <- prometheus.MustNewConstSummary(descReloadDur, uint64(snap.ReloadsOK+snap.ReloadsFailed), snap.ReloadSeconds, nil)
	counter(descRecycled, float64(snap.Recycled))
	for _, k := range []string{"foreign", "oversized", "malformed"} {
		counter(descDropped, float64(snap.Dropped[k]), k)
	}
}

// Handler serves /metrics for src, with the Go runtime's and the process's
// own metrics beside the pool's.
func Handler(src Source) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{NewCollector(src), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux, nil
}

// Limits on scrapers: whoever can reach the metrics socket (any local
// user, for a TCP socket) can cost baton at most MaxConns fds, each for a
// bounded time; further connections wait in the socket's backlog.
const (
	MaxConns          = 64
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 10 * time.Second
	MaxHeaderBytes    = 16 << 10
)

// Serve answers scrapes on l until ctx ends. report receives the server's
// errors (failed accepts, which are retried, and bad connections), at a
// limited rate.
func Serve(ctx context.Context, l net.Listener, h http.Handler, report func(error)) error {
	report = logging.Limit(10, 10*time.Second, report)
	al := accept.New(l, MaxConns, func(err error) { report(fmt.Errorf("metrics: %w", err)) })
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          log.New(reportWriter(report), "", 0),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(al) }()
	select {
	case err := <-done:
		return fmt.Errorf("metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// reportWriter turns net/http's log lines into reports.
type reportWriter func(error)

func (w reportWriter) Write(b []byte) (int, error) {
	w(fmt.Errorf("metrics: %s", strings.TrimSpace(string(b))))
	return len(b), nil
}
