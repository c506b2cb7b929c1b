package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/internal/systemdtest"
)

type options struct {
	duration    time.Duration
	concurrency int
	reloads     int
	workers     int
	path        string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "length of each run")
	flag.IntVar(&o.concurrency, "concurrency", 32, "concurrent clients")
	flag.IntVar(&o.reloads, "reloads", 3, "reloads during each run")
	flag.IntVar(&o.workers, "workers", 4, "baton workers")
	flag.StringVar(&o.path, "path", "/", "request path")
	flag.Parse()
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// Result is one run's numbers.
type Result struct {
	load.Summary
	KeepAlive       bool
	ReloadErrors    []string
	ReloadDurations []time.Duration
}

func run(ctx context.Context, o options, out io.Writer) error {
	dir, err := os.MkdirTemp("", "baton-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := load.Build(dir, map[string][]string{"baton": {"./cmd/baton"}, "hello": {"./examples/hello"}}); err != nil {
		return err
	}
	mgr, err := systemdtest.Start(ctx, dir)
	if err != nil {
		return err
	}
	defer mgr.Stop()

	port, err := load.FreePort()
	if err != nil {
		return err
	}
	cfg := filepath.Join(dir, "bench.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("command = [%q]\nworkers = %d\nsurge = 2\n", filepath.Join(dir, "hello"), o.workers)), 0o644); err != nil {
		return err
	}
	if err := mgr.WriteUnit(ctx, "bench.socket", fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\nFileDescriptorName=web\nBacklog=4096\n", port)); err != nil {
		return err
	}
	log := filepath.Join(dir, "bench.log")
	if err := mgr.WriteUnit(ctx, "bench.service", fmt.Sprintf("[Service]\nType=notify\nNotifyAccess=main\nKillMode=mixed\nRuntimeDirectory=bench\nStandardOutput=append:%s\nStandardError=append:%s\nExecStart=%s run -c %s\nExecReload=%s reload --wait\n",
		log, log, filepath.Join(dir, "baton"), cfg, filepath.Join(dir, "baton"))); err != nil {
		return err
	}
	if _, err := mgr.Systemctl(ctx, "start", "bench.socket", "bench.service"); err != nil {
		return err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, o.path)
	var results []Result
	for _, keepAlive := range []bool{true, false} {
		r, err := loadRun(ctx, mgr, url, o, keepAlive)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if _, err := mgr.Systemctl(ctx, "stop", "bench.service", "bench.socket"); err != nil {
		return err
	}
	report(out, o, results)
	return nil
}

func loadRun(ctx context.Context, mgr *systemdtest.Manager, url string, o options, keepAlive bool) (Result, error) {
	stop := make(chan struct{})
	done := make(chan []load.Sample, 1)
	go func() { done <- load.Run(url, o.concurrency, keepAlive, stop) }()
	begin := time.Now()
	var events []load.Event
	var reloadErrs []string
	for i := 1; i <= o.reloads; i++ {
		at := begin.Add(o.duration * time.Duration(i) / time.Duration(o.reloads+1))
		time.Sleep(time.Until(at))
		ev := load.Event{Start: time.Now()}
		_, ev.Err = mgr.Systemctl(ctx, "reload", "bench.service")
		ev.End = time.Now()
		if ev.Err != nil {
			reloadErrs = append(reloadErrs, ev.Err.Error())
		}
		events = append(events, ev)
	}
	time.Sleep(time.Until(begin.Add(o.duration)))
	close(stop)
	samples := <-done
	elapsed := time.Since(begin)
	r := Result{KeepAlive: keepAlive, Summary: load.Summarize(samples, events, elapsed), ReloadErrors: reloadErrs}
	for _, ev := range events {
		r.ReloadDurations = append(r.ReloadDurations, ev.End.Sub(ev.Start))
	}
	return r, nil
}

func report(w io.Writer, o options, results []Result) {
	fmt.Fprintf(w, "baton reload benchmark: %d workers, %d clients, %s per run, %d reloads per run, GET %s\n\n", o.workers, o.concurrency, o.duration, o.reloads, o.path)
	fmt.Fprintln(w, "| keep-alive | requests | req/s | failed | refused | reset | closed | timeout | non-2xx | other | p50 | p99 | max | reload took | worst latency during/after each reload |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
	for _, r := range results {
		ka := "off"
		if r.KeepAlive {
			ka = "on"
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %d |", ka, r.Requests, r.PerSecond, r.FailedTotal)
		for _, k := range load.Kinds {
			fmt.Fprintf(w, " %d |", r.Failed[k])
		}
		fmt.Fprintf(w, " %s | %s | %s | %s | %s |\n", load.Round(r.P50), load.Round(r.P99), load.Round(r.Max), load.Durations(r.ReloadDurations), load.Durations(r.WorstAround))
		for _, e := range r.ReloadErrors {
			fmt.Fprintf(w, "\nreload failed: %s\n", e)
		}
	}
}
