// Command hello is an ordinary systemd socket-activated HTTP server built
// on package serve, baton's library for Go workers: it runs under systemd
// or baton unchanged (and under baton, N times over).
//
// Endpoints:
//
//	/            who answered: worker slot, generation and pid
//	/sleep?ms=N  answer after N milliseconds (a slow request); with
//	             &flush=1 the headers are sent at once
//	/crash       answer, then crash with a panic
//	/hang        stop answering anything, forever (a hung process)
//
// Flags: -addr, where to listen without LISTEN_FDS; -request-timeout, a
// deadline after which a request is answered 504 (default none);
// -quiet-window, how long a drain lets a keep-alive connection idle
// before closing it (default 1s).
//
// HELLO_BOOT_DELAY (a Go duration) delays READY=1, for slow-boot demos;
// with HELLO_BOOT_EXTEND=1 it first asks for that much more boot time with
// EXTEND_TIMEOUT_USEC=.
//
// Under a manager that sets WATCHDOG_USEC it sends WATCHDOG=1 at half the
// interval from its accept loop; a hung process (/hang, SIGSTOP) stops
// doing so. Under baton it reports each request to baton's request clock,
// through the scoreboard when baton passes one, else with
// X_BATON_REQUEST_BEGIN/END datagrams; HELLO_REPORT_REQUESTS=0 turns that
// off, and BATON_REQUEST_REPORTS overrides it (docs/workers/go.md). SIGTERM
// drains it without failing a request; see package serve.
package main
