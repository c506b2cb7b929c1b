// Command hello is an ordinary systemd socket-activated HTTP server: it uses
// only go-systemd's activation and daemon packages, nothing of baton, to
// show that such a program runs under baton unchanged (and N times over).
//
// Endpoints:
//
//	/            who answered: worker slot, generation and pid
//	/sleep?ms=N  answer after N milliseconds (a slow request); with
//	             &flush=1 the headers are sent at once
//	/crash       answer, then crash with a panic
//	/hang        stop answering anything, forever (a hung process)
//
// HELLO_BOOT_DELAY (a Go duration) delays READY=1, for slow-boot demos.
// Without LISTEN_FDS it listens on -addr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address when not socket-activated")
	flag.Parse()
	if err := run(*addr); err != nil {
		log.Fatalf("hello: %v", err)
	}
}

// world serialises handlers behind /hang: once /hang holds it, every request
// blocks, which is what a deadlocked process looks like from outside.
var world sync.RWMutex

func handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from worker %s generation %s pid %d\n", os.Getenv("BATON_WORKER"), os.Getenv("BATON_GENERATION"), os.Getpid())
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 {
			http.Error(w, "want ?ms=N", http.StatusBadRequest)
			return
		}
		if r.URL.Query().Get("flush") == "1" {
			// Headers first, so a client knows a worker holds the request.
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
		}
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "slept %dms in worker %s pid %d\n", ms, os.Getenv("BATON_WORKER"), os.Getpid())
	})
	mux.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "crashing pid %d\n", os.Getpid())
		w.(http.Flusher).Flush()
		// Outside the handler: net/http recovers panics in handlers.
		go panic("crash requested over HTTP")
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hanging pid %d\n", os.Getpid())
		w.(http.Flusher).Flush()
		go world.Lock()
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		world.RLock()
		defer world.RUnlock()
		mux.ServeHTTP(w, r)
	})
}

func run(addr string) error {
	listeners, err := activation.Listeners()
	if err != nil {
		return fmt.Errorf("socket activation: %w", err)
	}
	if len(listeners) == 0 {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		listeners = []net.Listener{l}
	}
	if d, err := time.ParseDuration(os.Getenv("HELLO_BOOT_DELAY")); err == nil {
		time.Sleep(d)
	}

	srv := &http.Server{Handler: handler(), ReadHeaderTimeout: 10 * time.Second}
	errs := make(chan error, len(listeners))
	for _, l := range listeners {
		go func(l net.Listener) { errs <- srv.Serve(l) }(l)
	}
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS=serving"); err != nil {
		return fmt.Errorf("notify: %w", err)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case err := <-errs:
		return err
	case <-stop:
	}
	// Drain: finish in-flight requests, accept no new ones. The manager's
	// graceful timeout bounds this from outside.
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	if err := srv.Shutdown(context.Background()); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
