// Package load is the benchmarks' load generator: fixed concurrency
// against one URL on 127.0.0.1, every request timed and its failure
// classified, and events (reloads, restarts) marked so that the latency
// around each can be reported.
package load
