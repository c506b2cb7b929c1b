// Command reload benchmarks baton's reloads under load: it boots a private
// systemd user manager (internal/systemdtest), runs baton with the example
// worker behind a .socket unit, drives it with bench/load (which never
// retries) on 127.0.0.1 with keep-alive on and then off, at a fixed
// concurrency or, with -rate, at a fixed request rate, runs `systemctl
// --user reload` at even intervals during each run, and prints requests,
// failed requests by kind (and how many on reused connections), p50/p99/max
// latency, the failures nearest each reload, and the worst latency of the
// requests that started during each reload or the second after it, also as
// a ratio to the p99 of the rest of the run. -csv DIR keeps every request.
//
//	go run ./bench/reload -duration 20s -concurrency 32 -reloads 3
//
// Results and how they were obtained are in docs/benchmarks.md.
package main
