// Package control is baton's control socket: a unix stream socket in the
// service's runtime directory through which `baton reload`, `baton status`
// and `baton upgrade` talk to the running baton. One JSON request line in,
// one JSON response line out (unix(7)).
//
// Only the socket's owner (the service's user) and root may connect: the
// mode is 0600 and the peer's credentials (SO_PEERCRED) are checked as
// well; baton's own workers are refused unless allowed (a WorkerCheck
// tells them apart). Every connection is bounded in size and time, and
// failed accepts are retried (internal/accept): see docs/security.md.
package control
