// Command restart benchmarks what users of a self-binding service lose on
// a restart, and what baton keeps: it boots a private systemd user manager
// and drives the example server with bench/load (which never retries) on
// 127.0.0.1 at a fixed concurrency (fresh connections, so refusals show)
// through
//
//	baton:  3 x systemctl restart, 1 x kill -9 of baton, 1 x upgrade in
//	        place (new binary + systemctl reload); baton binds its own
//	        socket and keeps it in systemd's fd store
//	plain:  the same example run alone, binding its own socket, through
//	        3 x systemctl restart and 1 x kill -9 (Restart=on-failure)
//
// and prints requests, failed requests by kind, the failures nearest each
// event and the worst latency around each (during it or the second after),
// also as a ratio to the p99 of the rest of the run. Under baton the
// example's request reporting is off (HELLO_REPORT_REQUESTS=0), so both run
// the same code per request. -csv DIR keeps every request.
//
//	go run ./bench/restart -duration 10s -concurrency 16 [-csv DIR]
//
// Results are in docs/benchmarks.md.
package main
