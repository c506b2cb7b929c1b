// Command hello is an ordinary systemd socket-activated HTTP server: it uses
// only go-systemd's activation and daemon packages, nothing of baton, to
// show that such a program runs under baton unchanged (and N times over).
//
// Endpoints:
//
//	/            who answered: worker slot, generation and pid
//	/sleep?ms=N  answer after N milliseconds (a slow request); with
//	             &flush=1 the headers are sent at once
//	/crash       answer, then crash with a panic
//	/hang        stop answering anything, forever (a hung process)
//
// HELLO_BOOT_DELAY (a Go duration) delays READY=1, for slow-boot demos;
// with HELLO_BOOT_EXTEND=1 it first asks for that much more boot time with
// EXTEND_TIMEOUT_USEC=. Without LISTEN_FDS it listens on -addr.
//
// Under a manager that sets WATCHDOG_USEC it sends WATCHDOG=1 at a third of
// the interval; a hung process (/hang, SIGSTOP) stops doing so. Under baton
// it reports each request with X_BATON_REQUEST_BEGIN/END, baton's
// sd_notify extension, so that baton's request clock can tell a slow
// request from a hung process; HELLO_REPORT_REQUESTS=0 turns that off.
package main
