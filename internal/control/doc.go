// Package control is baton's control socket: a unix stream socket in the
// service's runtime directory through which `baton reload` and, later,
// `baton status` talk to the running baton. One JSON request line in, one
// JSON response line out. Only the socket's owner (the service's user) and
// root may connect: the mode is 0600 and the peer's credentials
// (SO_PEERCRED) are checked as well.
package control
