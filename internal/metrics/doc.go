// Package metrics exposes the pool in Prometheus's exposition format on a
// socket of baton's own (metrics-socket), using the Prometheus client
// library. Values are read from a supervisor snapshot at scrape time, so the
// supervisor's goroutine stays the only one that owns its state.
package metrics
