// Command reload benchmarks baton's reloads under load: it boots a private
// systemd user manager (internal/systemdtest), runs baton with the example
// worker behind a .socket unit, drives it at a fixed concurrency on
// 127.0.0.1 with keep-alive on and then off, runs `systemctl --user reload`
// at even intervals during each run, and prints requests, failed requests
// by kind, p50/p99/max latency and the worst latency of the requests that
// started during each reload or the second after it.
//
//	go run ./bench/reload -duration 20s -concurrency 32 -reloads 3
//
// Results and how they were obtained are in docs/benchmarks.md.
package main
