package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

// The e2e binary is also the worker of the PID 1 tests: with
// pid1WorkerEnv set to a directory it serves HTTP on the sockets baton
// passes, first leaves pid1OrphansEnv orphans behind, and on SIGTERM
// writes the CLOCK_MONOTONIC time it got it to DIR/term.PID before it
// drains.
const (
	pid1WorkerEnv  = "E2E_PID1_WORKER_DIR"
	pid1OrphansEnv = "E2E_PID1_ORPHANS"
)

func init() {
	if dir := os.Getenv(pid1WorkerEnv); dir != "" {
		if err := pid1Worker(dir); err != nil {
			fmt.Fprintf(os.Stderr, "pid1 worker: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

func pid1Worker(dir string) error {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	n, _ := strconv.Atoi(os.Getenv(pid1OrphansEnv))
	for i := range n {
		// sh starts a subshell in the background and exits at once: the
		// subshell, orphaned, writes its marker and exits, a zombie until
		// the namespace's init reaps it.
		marker := filepath.Join(dir, fmt.Sprintf("orphan.%d.%d", os.Getpid(), i))
		if out, err := exec.Command("/bin/sh", "-c", `(sleep 0.2; : > "$0") &`, marker).CombinedOutput(); err != nil {
			return fmt.Errorf("orphan: %v %s", err, out)
		}
	}
	listeners, err := activation.Listeners()
	if err != nil || len(listeners) == 0 {
		return fmt.Errorf("no sockets from baton: %v", err)
	}
	var open atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "pid %d\n", os.Getpid())
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		},
	}
	served := make(chan error, len(listeners))
	for _, l := range listeners {
		go func(l net.Listener) { served <- srv.Serve(l) }(l)
	}
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		return err
	}
	sig := <-stop
	if sig == syscall.SIGTERM {
		at := strconv.FormatInt(monotonic(), 10)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("term.%d", os.Getpid())), []byte(at+"\n"), 0o644); err != nil {
			return err
		}
	}
	// Drain as the example app does: stop accepting, turn keep-alives off,
	// wait for the connections accepted so far.
	for _, l := range listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
	}
	for range listeners {
		<-served
	}
	for open.Load() > 0 {
		srv.SetKeepAlivesEnabled(false)
		time.Sleep(5 * time.Millisecond)
	}
	return srv.Shutdown(context.Background())
}
