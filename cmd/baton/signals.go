package main

import (
	"os"
	"os/signal"
	"syscall"
)

// handledSignals are the signals baton acts on (README, "Signals"). Each
// has a handler, which is also what makes the kernel deliver it when
// baton is PID 1 of a container: to a namespace's init it drops every
// signal without one, SIGKILL and SIGSTOP from outside excepted.
var handledSignals = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP,
	syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGUSR2,
	// Acted on by nothing but a log line: other process managers use
	// SIGUSR1 to reopen logs, and a stray one must not end baton (Go's
	// default for it is to exit).
	syscall.SIGUSR1,
}

// notifySignals queues handledSignals from the start of baton run, so that
// a signal that arrives while baton starts is acted on once the pool runs
// (a SIGTERM then stops it gracefully) instead of taking its default
// action: death, or as PID 1 the kernel's refusal, after which Go's
// runtime exits with status 2.
func notifySignals() (sigs chan os.Signal, stop func()) {
	sigs = make(chan os.Signal, 8)
	signal.Notify(sigs, handledSignals...)
	return sigs, func() { signal.Stop(sigs) }
}

// catchBrokenPipes makes a write to a closed stdout or stderr (the reader
// of a log pipe died) fail with EPIPE instead of killing baton and
// orphaning its workers: Go kills a program on EPIPE at fd 1 or 2 unless
// SIGPIPE is notified. Notify, never signal.Ignore: an ignored disposition
// survives execve into every worker, where a handled one is reset to the
// default.
func catchBrokenPipes() (stop func()) {
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, syscall.SIGPIPE)
	go func() {
		for range pipes {
		}
	}()
	return func() { signal.Stop(pipes); close(pipes) }
}
