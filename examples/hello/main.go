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
	"sync/atomic"
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
	report := os.Getenv("BATON_WORKER") != "" && os.Getenv("HELLO_REPORT_REQUESTS") != "0"
	var seq atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		world.RLock()
		defer world.RUnlock()
		if report {
			id := fmt.Sprintf("%d %s %s", seq.Add(1), r.Method, r.URL.RequestURI())
			notify("X_BATON_REQUEST_BEGIN=" + id)
			defer notify("X_BATON_REQUEST_END=" + id)
		}
		mux.ServeHTTP(w, r)
	})
}

// notify sends to the manager; a lost notification must not fail a
// request, so errors are only logged.
func notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Printf("hello: notify: %v", err)
	}
}

// heartbeat sends WATCHDOG=1 while the process works: it takes the same
// lock as requests, so a hung process stops beating.
func heartbeat(ctx context.Context) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	t := time.NewTicker(interval / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			world.RLock()
			notify(daemon.SdNotifyWatchdog)
			world.RUnlock()
		}
	}
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
		if os.Getenv("HELLO_BOOT_EXTEND") == "1" {
			notify(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", (d + time.Second).Microseconds()))
		}
		time.Sleep(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go heartbeat(ctx)

	var open atomic.Int64 // connections not yet closed
	srv := &http.Server{
		Handler:           handler(),
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
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	return drain(srv, listeners, errs, &open)
}

// drain stops taking connections and finishes the ones it has; the
// manager's graceful timeout bounds it from outside.
//
// Not srv.Shutdown alone: once shutting down, net/http answers no request
// it reads afterwards, so a connection accepted just before the stop loses
// its first request. Under a pre-fork manager the listening socket is
// shared and another worker would have served it. So: close our listeners
// (the kernel's queue stays with the other workers), turn keep-alives off
// (idle connections close, active ones after their response), and wait
// until every connection we accepted is closed.
func drain(srv *http.Server, listeners []net.Listener, served <-chan error, open *atomic.Int64) error {
	for _, l := range listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
	}
	// Each Serve returns once its listener is closed, and only after it
	// registered the connection it may have just accepted: until then that
	// connection is not counted in open yet.
	for range listeners {
		<-served
	}
	for open.Load() > 0 {
		// Also closes connections idle since, and ones that sent nothing
		// for 5s, as Shutdown would.
		srv.SetKeepAlivesEnabled(false)
		time.Sleep(5 * time.Millisecond)
	}
	if err := srv.Shutdown(context.Background()); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
