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
	duration        time.Duration
	warmup          time.Duration
	rounds          int
	concurrency     int
	workers         int
	path            string
	batonScoreboard bool
	calibrate       bool
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured run")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each run")
	flag.IntVar(&o.rounds, "rounds", 3, "runs per case")
	flag.IntVar(&o.concurrency, "concurrency", 32, "keep-alive client connections per pool")
	flag.IntVar(&o.workers, "workers", 4, "example workers per pool")
	flag.StringVar(&o.path, "path", "/", "request path")
	flag.BoolVar(&o.batonScoreboard, "baton-scoreboard", false, "also run the example under baton reporting through the scoreboard baton passes (needs the supervisor side wired)")
	flag.BoolVar(&o.calibrate, "calibrate", false, "also measure reporting off beside reporting off, to see the method's own spread")
	flag.Parse()
	// Interrupted, the benchmark still stops the processes it started.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := runReports(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// build builds baton and the example into dir.
func build(dir string) error {
	return load.Build(dir, map[string][]string{"baton": {"./cmd/baton"}, "hello": {"./examples/hello"}})
}
