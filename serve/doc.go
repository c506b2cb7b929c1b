// Package serve runs a Go HTTP server as a worker under baton, or as any
// systemd service, doing the service side of systemd's protocols right:
// sockets by name, readiness, a watchdog that means something, request
// deadlines and reports, and a drain that fails no request. Run is the
// whole thing for a program's main; New, Server.Serve, Sockets and
// Notifier are the pieces for programs that own their signals or their
// listeners.
//
//	err := serve.Run(context.Background(), serve.Config{
//		Handler:        mux,
//		RequestTimeout: 30 * time.Second,
//	})
//
// # Sockets
//
// Sockets takes what the service manager passed as sd_listen_fds(3) with
// unset_environment does: LISTEN_FDS counts fds from 3, LISTEN_FDNAMES
// names them, and they are this process's only if LISTEN_PID is its pid;
// the variables are then unset so that children do not take the sockets
// for theirs. Listener("web") finds one by name, and says what was passed
// instead when the name is missing. Every worker of a pool shares these
// sockets, so their listeners accept from an epoll instance of their own
// with EPOLLEXCLUSIVE: a connection wakes one worker, not the poller of
// every worker, as Go's own listeners would (about 4 ms of CPU per
// connection at 1,000 workers; docs/benchmarks.md). Each worker moves to
// the back of the socket's wait queue after it accepts, so connections
// still spread round robin over the idle workers.
//
// # Readiness and status
//
// READY=1 goes out once every listener's accept loop has called Accept,
// not before: a manager that sends traffic on READY=1 finds the program
// accepting. STATUS= says "serving", then "draining: N connections open,
// M active"; STOPPING=1 starts the drain. Messages go over one datagram
// socket connected to NOTIFY_SOCKET and kept open (Notifier): a message is
// one send, which matters when every request is reported.
//
// # Watchdog
//
// With WATCHDOG_USEC set (for this pid, as sd_watchdog_enabled(3) reads
// it), WATCHDOG=1 goes out every WATCHDOG_USEC/2, but only from the
// serving loop and only on evidence of progress, so that a stuck server
// stops pinging and the manager restarts it. A goroutine on a ticker would
// ping as long as the runtime schedules goroutines, which a deadlocked
// server still does.
//
// The pings are driven by net/http's accept loops: each listener's
// deadline is set to the time the next ping is due, so an idle loop wakes
// up inside Accept, sends the ping and goes back to accepting; a loop
// wedged between two accepts (a ConnState hook that blocks, say) never
// wakes and nothing pings. (A listener without SetDeadline gets a ticker
// instead, which still checks the loops.) Before each ping the server
// checks the evidence and withholds the ping, logging why, when
//
//   - an accept loop has not come back to Accept within the interval;
//   - a request ran past its deadline (RequestTimeout) and no request at
//     all completed for a whole deadline: work is waiting and nothing
//     moves. A single wedged handler on a busy server does not stop the
//     pings, since other requests complete; baton's request clock deals
//     with that one. A deadlocked server stops pinging even while new
//     requests keep arriving, since none of them completes;
//   - Config.Healthy, if set, returns false.
//
// During a drain the drain loop takes over the pings, on the request
// evidence alone.
//
// # Request deadlines and reports
//
// With RequestTimeout set, each handler runs under a context with that
// deadline. A handler still running at its deadline that has written
// nothing yet is answered 504 Gateway Timeout in its place, and the
// connection is free for the client's next request; its later writes fail
// with http.ErrHandlerTimeout. One that has begun its answer is left to
// finish (its context is cancelled). Either way the request counts as
// running until its handler returns, in the watchdog's evidence and in
// what baton is told.
//
// Each request's begin and end are reported to baton for its request
// clock (docs/protocol.md): through the shared-memory scoreboard when
// baton passed one (BATON_SCOREBOARD_FD; package scoreboard), which costs
// a few atomic stores; else, when asked (Config.Reports, or
// BATON_REQUEST_REPORTS=notify), with X_BATON_REQUEST_BEGIN/END datagrams,
// two sends per request; else not at all. Requests asking for a protocol
// upgrade (WebSocket) are connections, not requests: no deadline, no
// report.
//
// # Drain
//
// A drain (SIGTERM under Run, or Serve's context cancelled) must fail no
// request, even for a client that never retries. http.Server.Shutdown
// does not meet that: it closes idle keep-alive connections at once, and a
// client sending on one at that moment gets a reset; and once it has begun,
// a connection accepted just before loses its first request. So the drain
// here does not call Shutdown until nothing is left:
//
//  1. STOPPING=1, and every response from now on carries Connection:
//     close, so its client does not send on that connection again.
//  2. The listeners are closed (under baton the socket is shared: the
//     kernel's queue stays with the other workers), and the drain waits
//     for every accept loop to return, since only then is every
//     connection it accepted registered.
//  3. A connection that sends another request is answered, with
//     Connection: close, then closed by net/http.
//  4. A connection idle (or accepted and silent) is closed only once it
//     has been quiet for QuietWindow (1s), counted from the later of the
//     drain's start and its last response, and only if no byte of a next
//     request has arrived (read, or waiting in the kernel's queue). A
//     client that sends within the window is answered, not reset.
//  5. Requests running finish; when no connection is left, the drain
//     ends and Serve returns.
//
// HTTP/1.1 leaves one race no server can close: a client that sends on an
// idle connection at the very moment the server closes it, after the
// window. Clients must retry idempotent requests for that (RFC 9112, 9.3.1);
// the window makes it as rare as a client idle that long.
//
// serve speaks HTTP/1 only: the drain is HTTP/1's Connection: close, and
// TLS and HTTP/2 belong in front of a pre-fork pool.
//
// See https://www.freedesktop.org/software/systemd/man/sd_listen_fds.html,
// https://www.freedesktop.org/software/systemd/man/sd_notify.html,
// https://www.freedesktop.org/software/systemd/man/sd_watchdog_enabled.html
// and docs/workers/go.md.
package serve
