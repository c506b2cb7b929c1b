package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/batonhq/baton/bench/host"
	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/internal/systemdtest"
)

type options struct {
	duration    time.Duration
	concurrency int
	rate        float64
	reloads     int
	workers     int
	path        string
	csvDir      string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "length of each run")
	flag.IntVar(&o.concurrency, "concurrency", 32, "concurrent clients (connections at once)")
	flag.Float64Var(&o.rate, "rate", 0, "requests per second, open loop (0: closed loop)")
	flag.IntVar(&o.reloads, "reloads", 3, "reloads during each run")
	flag.IntVar(&o.workers, "workers", 4, "baton workers")
	flag.StringVar(&o.path, "path", "/", "request path")
	flag.StringVar(&o.csvDir, "csv", "", "directory to write each run's requests to (keepalive-on.csv, keepalive-off.csv)")
	flag.Parse()
	results, err := run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	report(os.Stdout, o, results)
}

// Result is one run's numbers.
type Result struct {
	KeepAlive bool
	Run       *load.Result
	Summary   load.Summary
	// Steady is the run outside the reload windows.
	Steady  load.Summary
	Reloads []Reload
}

// Reload is one reload during a run.
type Reload struct {
	Took time.Duration
	// Worst is the slowest request that started during the reload or in
	// the second after it.
	Worst time.Duration
	// Failed is the failed requests nearest to this reload.
	Failed int
	Err    error
}

func run(ctx context.Context, o options) ([]Result, error) {
	// systemd's notify queue length, as on a machine systemd booted.
	if _, err := host.Prepare(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "baton-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := load.Build(dir, map[string][]string{"baton": {"./cmd/baton"}, "hello": {"./examples/hello"}}); err != nil {
		return nil, err
	}
	mgr, err := systemdtest.Start(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer mgr.Stop()

	port, err := load.FreePort()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "bench.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("command = [%q]\nworkers = %d\nsurge = 2\n", filepath.Join(dir, "hello"), o.workers)), 0o644); err != nil {
		return nil, err
	}
	if err := mgr.WriteUnit(ctx, "bench.socket", fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\nFileDescriptorName=web\nBacklog=4096\n", port)); err != nil {
		return nil, err
	}
	log := filepath.Join(dir, "bench.log")
	if err := mgr.WriteUnit(ctx, "bench.service", fmt.Sprintf("[Service]\nType=notify\nNotifyAccess=main\nKillMode=mixed\nRuntimeDirectory=bench\nStandardOutput=append:%s\nStandardError=append:%s\nExecStart=%s run -c %s\nExecReload=%s reload --wait\n",
		log, log, filepath.Join(dir, "baton"), cfg, filepath.Join(dir, "baton"))); err != nil {
		return nil, err
	}
	if _, err := mgr.Systemctl(ctx, "start", "bench.socket", "bench.service"); err != nil {
		return nil, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, o.path)
	var results []Result
	for _, keepAlive := range []bool{true, false} {
		r, err := loadRun(ctx, mgr, url, o, keepAlive)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	if _, err := mgr.Systemctl(ctx, "stop", "bench.service", "bench.socket"); err != nil {
		return nil, err
	}
	return results, nil
}

func loadRun(ctx context.Context, mgr *systemdtest.Manager, url string, o options, keepAlive bool) (Result, error) {
	l, err := load.Start(ctx, load.Options{URL: url, Clients: o.concurrency, Rate: o.rate, KeepAlive: keepAlive})
	if err != nil {
		return Result{}, err
	}
	begin := time.Now()
	var events, windows []load.Window
	var reloads []Reload
	for i := 1; i <= o.reloads; i++ {
		time.Sleep(time.Until(begin.Add(o.duration * time.Duration(i) / time.Duration(o.reloads+1))))
		start := time.Now()
		_, err := mgr.Systemctl(ctx, "reload", "bench.service")
		end := time.Now()
		events = append(events, load.Window{From: start, To: end})
		windows = append(windows, load.Window{From: start, To: end.Add(time.Second)})
		reloads = append(reloads, Reload{Took: end.Sub(start), Err: err})
	}
	time.Sleep(time.Until(begin.Add(o.duration)))
	res := l.Stop()
	r := Result{KeepAlive: keepAlive, Run: res, Summary: res.Summary(), Steady: res.Outside(windows...).Summary(), Reloads: reloads}
	failed := res.FailedNearest(events)
	for i, w := range windows {
		r.Reloads[i].Worst = res.Worst(w)
		r.Reloads[i].Failed = failed[i]
	}
	if o.csvDir != "" {
		if err := res.SaveCSV(filepath.Join(o.csvDir, fmt.Sprintf("keepalive-%s.csv", onOff(keepAlive)))); err != nil {
			return r, err
		}
	}
	return r, nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func report(w io.Writer, o options, results []Result) {
	mode := "closed loop"
	if o.rate > 0 {
		mode = fmt.Sprintf("%g req/s", o.rate)
	}
	fmt.Fprintf(w, "baton reload benchmark: %d workers, %d clients, %s, %s per run, %d reloads per run, GET %s; %s\n\n", o.workers, o.concurrency, mode, o.duration, o.reloads, o.path, host.Describe())
	fmt.Fprint(w, "| keep-alive | requests | req/s | failed |")
	for _, k := range load.Kinds {
		fmt.Fprintf(w, " %s |", k)
	}
	fmt.Fprintln(w, " on reused conns | p50 | p99 | max | steady p99 | reload took | failed around each reload | worst latency during/after each reload | worst / steady p99 |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- |")
	for _, r := range results {
		s := r.Summary
		fmt.Fprintf(w, "| %s | %d | %.0f | %d |", onOff(r.KeepAlive), s.Requests, s.PerSecond, s.Failed)
		for _, k := range load.Kinds {
			fmt.Fprintf(w, " %d |", s.ByKind[k])
		}
		var took, worst []time.Duration
		var ratios, failed []string
		for _, rl := range r.Reloads {
			took, worst = append(took, rl.Took), append(worst, rl.Worst)
			ratios = append(ratios, ratio(rl.Worst, r.Steady.P99))
			failed = append(failed, fmt.Sprint(rl.Failed))
		}
		fmt.Fprintf(w, " %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.FailedReused, load.Round(s.P50), load.Round(s.P99), load.Round(s.Max), load.Round(r.Steady.P99),
			load.Durations(took), strings.Join(failed, ", "), load.Durations(worst), strings.Join(ratios, ", "))
	}
	for _, r := range results {
		for i, rl := range r.Reloads {
			if rl.Err != nil {
				fmt.Fprintf(w, "\nkeep-alive %s: reload %d failed: %v\n", onOff(r.KeepAlive), i+1, rl.Err)
			}
		}
		if f := r.Run.Failures(); len(f) > 0 {
			fmt.Fprintf(w, "\nkeep-alive %s: %d failed requests (%s):\n", onOff(r.KeepAlive), len(f), r.Summary.FailedKinds())
			for i, x := range f {
				if i == 20 {
					fmt.Fprintf(w, "... and %d more\n", len(f)-i)
					break
				}
				fmt.Fprintln(w, x)
			}
		}
	}
}

// ratio is a/b as "2.3x", or "-" without a steady p99.
func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fx", float64(a)/float64(b))
}
