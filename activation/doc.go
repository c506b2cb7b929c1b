// Package activation owns baton's listening sockets: it inherits them from
// systemd (sd_listen_fds(3): LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES), binds
// the configured ones that systemd did not pass, matches the two by name, and
// describes them to children exactly as systemd would.
//
// go-systemd's activation package skips silently what it cannot use (a wrong
// LISTEN_PID, a bad count); baton must say what was wrong instead, so the
// parsing here is its own and strict. The example worker, an ordinary
// socket-activated app, uses go-systemd's package unchanged.
//
// See https://www.freedesktop.org/software/systemd/man/sd_listen_fds.html and
// https://www.freedesktop.org/software/systemd/man/systemd.socket.html.
package activation
