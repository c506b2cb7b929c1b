// Package load is the repository's one HTTP load generator: the
// benchmarks, the end-to-end tests and the package test all drive servers
// through it.
//
// It speaks HTTP/1.1 itself over net.Conn rather than through net/http's
// client, because that client silently retries a request that failed on a
// reused keep-alive connection, which hides exactly the resets a reload or
// a restart can cause. Here every request is sent once: a failure on a
// reused connection is recorded as a failure, with its kind (refused,
// reset, eof, timeout, non-2xx, other) and whether the connection was
// reused.
//
// A run is either a closed loop (N clients, each sending its next request
// when the previous one finished) or an open loop at a fixed rate, where
// latency counts from each request's scheduled start so that a stalled
// server cannot hide behind a stalled client (coordinated omission). Every
// request is kept as a Record; Result summarises them (counts by kind,
// throughput, percentiles, the worst latency in a window) and writes them
// as CSV.
//
// The protocol is RFC 9112 (HTTP/1.1 message syntax and connection
// management): https://www.rfc-editor.org/rfc/rfc9112.
package load
