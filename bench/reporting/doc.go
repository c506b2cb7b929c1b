// Command reporting measures what reporting requests to baton costs a Go
// worker (examples/hello on package serve): throughput with reporting off,
// with X_BATON_REQUEST_BEGIN/END datagrams, and through the shared-memory
// scoreboard, each case measured beside reporting off at the same time.
//
//	go run ./bench/reporting -rounds 21 -duration 4s -calibrate
//
// baton does not pass scoreboards yet, so a harness plays its part for the
// scoreboard case; -baton-scoreboard adds the case under baton itself once
// it does. docs/benchmarks.md has the numbers and what they show.
package main
