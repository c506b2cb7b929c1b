// Package accept owns the accept loop of baton's own servers (the control
// socket, the metrics socket): a failed accept(2) (EMFILE, ENFILE, ENOBUFS,
// ECONNABORTED, see accept(2)) is retried with a doubling backoff, 5ms to
// 1s as net/http does, and reported at a limited rate, so that fd
// exhaustion degrades a server and never ends it; and a cap on the
// connections open at once, beyond which connections wait in the kernel's
// backlog, costing baton no fd.
package accept
