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
	// rate, when positive, loads each pool at that many requests per
	// second instead of a closed loop.
	rate   float64
	csvDir string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured run")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each run")
	flag.IntVar(&o.rounds, "rounds", 3, "runs per case")
	flag.IntVar(&o.concurrency, "concurrency", 32, "keep-alive client connections per pool")
	flag.IntVar(&o.workers, "workers", 4, "example workers per pool")
	flag.StringVar(&o.path, "path", "/", "request path")
	flag.BoolVar(&o.batonScoreboard, "baton-scoreboard", false, "require the case under baton reporting through the scoreboard baton passes (it runs anyway once baton passes scoreboards; this fails until then)")
	flag.BoolVar(&o.calibrate, "calibrate", false, "also measure reporting off beside reporting off, to see the method's own spread")
	flag.Float64Var(&o.rate, "rate", 0, "requests per second for each pool, open loop (0: closed loop, as fast as it goes)")
	flag.StringVar(&o.csvDir, "csv", "", "directory to write every run's requests to, one CSV per pool and round")
	flag.Parse()
	if o.csvDir != "" {
		if err := os.MkdirAll(o.csvDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
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
