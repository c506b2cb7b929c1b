package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/batonhq/baton/serve"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address when not socket-activated")
	requestTimeout := flag.Duration("request-timeout", 0, "answer 504 to a request still running after this long (0: never)")
	quiet := flag.Duration("quiet-window", serve.DefaultQuietWindow, "while draining, close a keep-alive connection once it has been idle this long")
	flag.Parse()
	if err := run(*addr, *requestTimeout, *quiet); err != nil {
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

// healthy is serve's watchdog check: a process that /hang wedged fails it
// (a writer holds or waits for world), so its WATCHDOG=1 stops.
func healthy() bool {
	if !world.TryRLock() {
		return false
	}
	world.RUnlock()
	return true
}

func run(addr string, requestTimeout, quiet time.Duration) error {
	set, err := serve.Sockets()
	if err != nil {
		return err
	}
	listeners, err := set.AllListeners()
	if err != nil {
		return err
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
			if err := serve.Notify(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", (d + time.Second).Microseconds())); err != nil {
				log.Printf("hello: notify: %v", err)
			}
		}
		time.Sleep(d)
	}
	// Report requests through the scoreboard, which baton passes when its
	// request clock runs (request-timeout), and not at all otherwise:
	// datagrams nobody needs cost the worker 55-70% more CPU per request
	// (bench/reporting).
	reports := serve.ReportsAuto
	if os.Getenv("HELLO_REPORT_REQUESTS") == "0" {
		reports = serve.ReportsOff
	}
	return serve.Run(context.Background(), serve.Config{
		Handler:        handler(),
		Server:         &http.Server{ReadHeaderTimeout: 10 * time.Second},
		RequestTimeout: requestTimeout,
		QuietWindow:    quiet,
		Reports:        reports,
		Healthy:        healthy,
	}, listeners...)
}
