// Package proc owns this process's children: it forks every one of them on
// a single OS thread, which is also the thread that executes a new baton
// image in place, and one reaper goroutine waits for all of them.
//
// One thread, because Linux ties PR_SET_PDEATHSIG to the parent thread, not
// the process: a worker forked from a thread that later exits (or that
// execve(2) destroys while another thread executes a new image) would be
// killed by its parent-death signal. cmd/baton serves the fork thread from
// main's goroutine, locked to the main thread in init, so it outlives every
// execve(2) of an upgrade; tests get a dedicated locked goroutine instead.
//
// One reaper, because a process that is PID 1 in a namespace or a child
// subreaper (prctl(2) PR_SET_CHILD_SUBREAPER) inherits orphans it never
// forked and must reap them too; and one blocking waitid(2) costs one
// thread, where a wait per child costs a thread per child. In ReapAll mode
// every child is reaped and unknown ones are reported as orphans; otherwise
// the reaper peeks (WNOWAIT) and leaves children it did not start to
// whoever started them.
//
// See wait(2), pidfd_open(2), prctl(2) and, for the semantics baton copies,
// systemd's service manager:
// https://www.freedesktop.org/software/systemd/man/systemd.kill.html
package proc
