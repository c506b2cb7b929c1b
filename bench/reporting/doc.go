// Command reporting measures what reporting requests to baton costs a Go
// worker (examples/hello on package serve), and what baton itself costs a
// request: throughput with reporting off, with X_BATON_REQUEST_BEGIN/END
// datagrams, and through the shared-memory scoreboard, and baton without
// reporting beside the example alone (no baton), each case measured
// beside its reference at the same time, with the CPU time every process
// of each pool spent per request.
//
//	go run ./bench/reporting -rounds 21 -duration 4s -calibrate [-workers 1] [-rate 1000] [-csv DIR]
//
// Without -rate the clients run a closed loop (as fast as the pool
// answers) and the ratio of throughputs is the cost; with -rate each pool
// gets that many requests a second and the ratio of CPU per request is.
// The scoreboard case under baton runs once baton passes scoreboards
// (cmd/baton uses package scoreboard); until then the command says so and
// a harness plays baton's part for the scoreboard case (-baton-scoreboard
// requires the baton case, and fails until it exists). The harness
// without a scoreboard is the example alone: its workers share the socket
// as under baton, with no supervisor. docs/benchmarks.md has the numbers
// and what they show.
package main
