// Package sdnotify implements both sides of systemd's notification protocol,
// sd_notify(3): parsing the newline-separated KEY=VALUE datagrams a service
// sends, receiving them with kernel-verified sender credentials (SO_PASSCRED,
// SCM_CREDENTIALS) as a service manager does, and sending them, with file
// descriptors attached (SCM_RIGHTS) for BARRIER=1 and the fd store.
//
// baton sits on both sides: it receives from its workers on a socket of its
// own and sends upwards to systemd's NOTIFY_SOCKET.
//
// See https://www.freedesktop.org/software/systemd/man/sd_notify.html and
// systemd's src/core/service.c (service_notify_message) for the semantics
// followed here.
package sdnotify
