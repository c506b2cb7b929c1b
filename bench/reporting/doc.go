// Command reporting measures what request reporting costs: the example
// worker (examples/hello) at its maximum throughput and at a fixed rate,
// under baton with request reporting off, with datagrams
// (X_BATON_REQUEST_BEGIN/END on NOTIFY_SOCKET, two per request) and through
// the shared-memory scoreboard, and alone without baton, with 1 and with 4
// processes, from a .socket unit under a private systemd user manager
// (internal/systemdtest), driven by bench/load with keep-alive on.
//
// Each case runs a closed loop (-clients connections, each sending its
// next request when the previous one finished) for its throughput, then a
// fixed rate (-rate requests per second) for its latency. For both, the
// CPU time of every process of the case's units (baton and its workers,
// or the example alone) divided by the requests answered is the CPU each
// request cost, which a shared machine disturbs less than throughput; the
// supervisor's own share of a core is listed apart. Cases run in
// interleaved rounds (-rounds) and the table gives each figure's median.
//
// Reporting modes are chosen with the example's variables: off is
// HELLO_REPORT_REQUESTS=0 and BATON_REQUEST_REPORTS=off, datagrams are
// HELLO_REPORT_REQUESTS=1 and BATON_REQUEST_REPORTS=notify, the scoreboard
// is BATON_REQUEST_REPORTS=scoreboard; every reporting case sets baton's
// request-timeout (30s), which is what reporting is for and what makes
// baton pass a scoreboard. The scoreboard case runs only when both baton
// and the example use the scoreboard package; otherwise the command says
// so and leaves it out.
//
//	go run ./bench/reporting [-duration 10s] [-clients 32] [-rate 1000] [-rounds 3] [-csv DIR]
//
// Results and how they were obtained are in docs/benchmarks.md.
package main
