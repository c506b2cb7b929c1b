// Package unixsock owns one decision about unix socket paths: whether a
// socket file found where baton is about to bind is stale (left by a
// process that died) and may be removed, or belongs to a live process and
// must be left alone. The test is the one connect(2) gives (see unix(7)):
// only ECONNREFUSED means nobody listens.
package unixsock
