// Command serve benchmarks Go workers built on package serve, with a
// client of its own that speaks raw HTTP/1.1 and never retries (net/http's
// client silently retries a failed keep-alive request, which would hide
// exactly what these runs look for):
//
//	go run ./bench/serve -run reports   # throughput: request reporting off, by datagram, through the scoreboard
//	go run ./bench/serve -run drain     # reloads under keep-alive load: failed requests by kind
//
// docs/benchmarks.md has the numbers and what they show.
package main
