package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/batonhq/baton/bench/load"
)

type options struct {
	run             string
	duration        time.Duration
	warmup          time.Duration
	rounds          int
	concurrency     int
	workers         int
	path            string
	batonScoreboard bool
	calibrate       bool
	// drain
	reloads int
	think   time.Duration
	hello   string
	quiet   time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.run, "run", "reports", "`what` to measure: reports (throughput by request reporting) or drain (reloads under keep-alive load)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured run")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "reports: unmeasured load before each run")
	flag.IntVar(&o.rounds, "rounds", 3, "reports: runs per case, interleaved")
	flag.IntVar(&o.concurrency, "concurrency", 32, "keep-alive client connections")
	flag.IntVar(&o.workers, "workers", 4, "example workers")
	flag.StringVar(&o.path, "path", "/", "request path")
	flag.BoolVar(&o.batonScoreboard, "baton-scoreboard", false, "reports: also run the example under baton reporting through the scoreboard baton passes (needs the supervisor side wired)")
	flag.BoolVar(&o.calibrate, "calibrate", false, "reports: also measure reporting off beside reporting off, to see the method's own bias")
	flag.IntVar(&o.reloads, "reloads", 5, "drain: reloads during the run")
	flag.DurationVar(&o.think, "think", 20*time.Millisecond, "drain: every other client waits up to this long between requests, so that connections sit idle")
	flag.DurationVar(&o.quiet, "quiet-window", 0, "drain: the example's -quiet-window (0: its default, 1s)")
	flag.StringVar(&o.hello, "hello", "", "drain: run this example binary instead of building examples/hello (to compare builds)")
	flag.Parse()
	// Interrupted, the benchmark still stops the services it started.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch o.run {
	case "reports":
		_, err = runReports(ctx, o, os.Stdout)
	case "drain":
		_, err = runDrain(ctx, o, os.Stdout)
	default:
		err = fmt.Errorf("-run %q: want reports or drain", o.run)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// build builds baton and the example into dir.
func build(dir string) error {
	return load.Build(dir, map[string][]string{"baton": {"./cmd/baton"}, "hello": {"./examples/hello"}})
}

func freePort() (int, error) { return load.FreePort() }
