// Package workers owns the pool: it spawns worker processes with the
// sockets and environment systemd would give them, listens on its own
// NOTIFY_SOCKET for their sd_notify(3) messages (attributed by
// kernel-verified pid to a worker or its descendants), tracks each worker's
// state (starting, ready, stopping), enforces the boot timeout, respawns
// exited workers with per-slot exponential backoff, and stops the pool
// gracefully (SIGTERM, graceful-timeout, SIGKILL) or fast.
//
// One goroutine, Supervisor.Run, owns all of that state; process waiters and
// the notify reader send it events on channels.
//
// Semantics follow systemd's service manager for one service:
// https://www.freedesktop.org/software/systemd/man/systemd.service.html
// (Type=notify and Type=exec readiness, KillMode=mixed) and
// https://www.freedesktop.org/software/systemd/man/sd_notify.html.
package workers
