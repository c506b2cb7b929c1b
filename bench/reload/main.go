// Command reload benchmarks baton's reloads under load: it boots a private
// systemd user manager (internal/systemdtest), runs baton with the example
// worker behind a .socket unit, drives it at a fixed concurrency on
// 127.0.0.1 with keep-alive on and then off, runs `systemctl --user reload`
// at even intervals during each run, and prints requests, failed requests
// by kind, p50/p99/max latency and the worst latency of the requests that
// started during each reload or the second after it.
//
//	go run ./bench/reload -duration 20s -concurrency 32 -reloads 3
//
// Results and how they were obtained are in docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

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

// sample is one request.
type sample struct {
	start   time.Time
	latency time.Duration
	kind    string // "" for success
}

// reload is one systemctl reload during a run.
type reload struct {
	start, end time.Time
	err        error
}

// Result is one run's numbers.
type Result struct {
	KeepAlive           bool
	Requests            int
	Failed              map[string]int
	P50, P99, Max       time.Duration
	WorstAfterReload    []time.Duration
	ReloadErrors        []string
	RequestsPerSecond   float64
	ReloadDurations     []time.Duration
	Duration            time.Duration
	Concurrency, Worker int
}

func run(ctx context.Context, o options, out io.Writer) error {
	dir, err := os.MkdirTemp("", "baton-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	bins := map[string]string{"baton": "./cmd/baton", "hello": "./examples/hello"}
	for name, pkg := range bins {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v: %s", pkg, err, b)
		}
	}
	mgr, err := systemdtest.Start(ctx, dir)
	if err != nil {
		return err
	}
	defer mgr.Stop()

	port, err := freePort()
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
	tr := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: o.concurrency, MaxIdleConns: o.concurrency}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var mu sync.Mutex
	var samples []sample
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < o.concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []sample
			for {
				select {
				case <-stop:
					mu.Lock()
					samples = append(samples, local...)
					mu.Unlock()
					return
				default:
				}
				start := time.Now()
				kind := get(client, url)
				local = append(local, sample{start: start, latency: time.Since(start), kind: kind})
			}
		}()
	}
	begin := time.Now()
	var reloads []reload
	for i := 1; i <= o.reloads; i++ {
		at := begin.Add(o.duration * time.Duration(i) / time.Duration(o.reloads+1))
		time.Sleep(time.Until(at))
		r := reload{start: time.Now()}
		_, r.err = mgr.Systemctl(ctx, "reload", "bench.service")
		r.end = time.Now()
		reloads = append(reloads, r)
	}
	time.Sleep(time.Until(begin.Add(o.duration)))
	close(stop)
	wg.Wait()
	elapsed := time.Since(begin)
	return summarize(samples, reloads, keepAlive, elapsed, o), nil
}

// get makes one request and classifies its failure ("" for success).
func get(c *http.Client, url string) string {
	resp, err := c.Get(url)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode < 200 || resp.StatusCode > 299) {
			return "non-2xx"
		}
	}
	return classify(err)
}

func classify(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), strings.Contains(err.Error(), "EOF"):
		return "closed"
	}
	return "other"
}

func summarize(samples []sample, reloads []reload, keepAlive bool, elapsed time.Duration, o options) Result {
	r := Result{KeepAlive: keepAlive, Requests: len(samples), Failed: map[string]int{}, Duration: elapsed, Concurrency: o.concurrency, Worker: o.workers}
	lat := make([]time.Duration, 0, len(samples))
	for _, s := range samples {
		if s.kind != "" {
			r.Failed[s.kind]++
		}
		lat = append(lat, s.latency)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if n := len(lat); n > 0 {
		r.P50, r.P99, r.Max = lat[n*50/100], lat[n*99/100], lat[n-1]
	}
	r.RequestsPerSecond = float64(len(samples)) / elapsed.Seconds()
	for _, rl := range reloads {
		worst := time.Duration(0)
		for _, s := range samples {
			if !s.start.Before(rl.start) && s.start.Before(rl.end.Add(time.Second)) && s.latency > worst {
				worst = s.latency
			}
		}
		r.WorstAfterReload = append(r.WorstAfterReload, worst)
		r.ReloadDurations = append(r.ReloadDurations, rl.end.Sub(rl.start))
		if rl.err != nil {
			r.ReloadErrors = append(r.ReloadErrors, rl.err.Error())
		}
	}
	return r
}

func report(w io.Writer, o options, results []Result) {
	fmt.Fprintf(w, "baton reload benchmark: %d workers, %d clients, %s per run, %d reloads per run, GET %s\n\n", o.workers, o.concurrency, o.duration, o.reloads, o.path)
	fmt.Fprintln(w, "| keep-alive | requests | req/s | failed | refused | reset | closed | timeout | non-2xx | other | p50 | p99 | max | reload took | worst latency during/after each reload |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
	for _, r := range results {
		failed := 0
		for _, n := range r.Failed {
			failed += n
		}
		ka := "off"
		if r.KeepAlive {
			ka = "on"
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %d | %d | %d | %d | %d | %d | %d | %s | %s | %s | %s | %s |\n",
			ka, r.Requests, r.RequestsPerSecond, failed, r.Failed["refused"], r.Failed["reset"], r.Failed["closed"], r.Failed["timeout"], r.Failed["non-2xx"], r.Failed["other"],
			round(r.P50), round(r.P99), round(r.Max), durations(r.ReloadDurations), durations(r.WorstAfterReload))
		for _, e := range r.ReloadErrors {
			fmt.Fprintf(w, "\nreload failed: %s\n", e)
		}
	}
}

func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func durations(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, round(d))
	}
	return strings.Join(s, ", ")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// moduleRoot finds the directory of go.mod, so the benchmark runs from
// anywhere in the repository.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the benchmark inside the baton repository")
	}
	return filepath.Dir(mod), nil
}
