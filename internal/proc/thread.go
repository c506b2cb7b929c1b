package proc

import (
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
)

// work is what the fork thread runs, in order.
var work = make(chan func())

var (
	mainServes atomic.Bool
	startOnce  sync.Once
)

// ServeMainThread runs fn on a new goroutine and serves the fork thread on
// the calling one until fn returns, then returns fn's result. Call it from
// main, on the main goroutine, locked to the main thread by
// runtime.LockOSThread in an init function: the main thread is the one
// thread that survives the process's own execve(2).
func ServeMainThread(fn func() int) int {
	mainServes.Store(true)
	done := make(chan int, 1)
	go func() { done <- fn() }()
	for {
		select {
		case f := <-work:
			f()
		case code := <-done:
			return code
		}
	}
}

// Do runs f on the fork thread and returns when it has run.
func Do(f func()) {
	if !mainServes.Load() {
		startOnce.Do(func() {
			go func() {
				// Never unlocked: the thread must never exit while it has
				// children whose parent-death signal is armed.
				runtime.LockOSThread()
				for f := range work {
					f()
				}
			}()
		})
	}
	done := make(chan struct{})
	work <- func() { f(); close(done) }
	<-done
}

// Exec executes a new image in place, on the fork thread, so that the
// children it forked keep their parent. It returns only on failure.
func Exec(path string, argv, env []string) error {
	var err error
	Do(func() { err = syscall.Exec(path, argv, env) })
	return err
}
