package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/bench/host"
	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/internal/systemdtest"
)

type options struct {
	duration    time.Duration
	concurrency int
	workers     int
	csvDir      string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each run")
	flag.IntVar(&o.concurrency, "concurrency", 16, "concurrent clients")
	flag.IntVar(&o.workers, "workers", 4, "baton workers")
	flag.StringVar(&o.csvDir, "csv", "", "directory to write each scenario's requests to (baton.csv, plain.csv)")
	flag.Parse()
	if o.csvDir != "" {
		if err := os.MkdirAll(o.csvDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	rows, err := run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	report(os.Stdout, o, rows)
}

// row is one scenario's result.
type row struct {
	name string
	res  *load.Result
	sum  load.Summary
	// steady is the run outside the events' windows.
	steady load.Summary
	// events are the events' spans; windows run to a second after each.
	events, windows []load.Window
	failedAround    []int
	errs            []string
}

type env struct {
	ctx  context.Context
	mgr  *systemdtest.Manager
	dir  string
	opts options
}

func run(ctx context.Context, o options) ([]row, error) {
	// systemd's notify queue length, as on a machine systemd booted.
	if _, err := host.Prepare(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "baton-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := load.Build(dir, map[string][]string{
		"baton":    {"./cmd/baton"},
		"baton-v2": {"-ldflags", "-X main.version=bench-2", "./cmd/baton"},
		"hello":    {"./examples/hello"},
	}); err != nil {
		return nil, err
	}
	mgr, err := systemdtest.Start(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer mgr.Stop()
	e := &env{ctx: ctx, mgr: mgr, dir: dir, opts: o}
	var rows []row
	for _, sc := range []func(*env) (row, error){batonScenario, plainScenario} {
		rs, err := sc(e)
		if err != nil {
			return nil, err
		}
		rows = append(rows, rs)
	}
	return rows, nil
}

func report(out io.Writer, o options, rows []row) {
	fmt.Fprintf(out, "restart benchmark: %d clients, fresh connection per request, %s per run, GET /; %s\n\n", o.concurrency, o.duration, host.Describe())
	fmt.Fprint(out, "| service | events | requests | failed |")
	for _, k := range load.Kinds {
		fmt.Fprintf(out, " %s |", k)
	}
	fmt.Fprintln(out, " p99 | max | failed around each event | worst latency around each event | worst / steady p99 |")
	fmt.Fprintln(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |")
	for _, r := range rows {
		s := r.sum
		fmt.Fprintf(out, "| %s | %d | %d | %d |", r.name, len(r.windows), s.Requests, s.Failed)
		for _, k := range load.Kinds {
			fmt.Fprintf(out, " %d |", s.ByKind[k])
		}
		var worst []time.Duration
		var ratios []string
		for _, w := range r.windows {
			worst = append(worst, r.res.Worst(w))
			ratios = append(ratios, ratio(r.res.Worst(w), r.steady.P99))
		}
		fmt.Fprintf(out, " %s | %s | %s | %s | %s |\n", load.Round(s.P99), load.Round(s.Max), ints(r.failedAround), load.Durations(worst), strings.Join(ratios, ", "))
	}
	for _, r := range rows {
		for _, e := range r.errs {
			fmt.Fprintf(out, "\n%s: event failed: %s\n", r.name, e)
		}
	}
}

// drive runs load while acts run at even intervals, each one event. A
// failure counts for the event it started nearest to; the worst latency of
// an event is that of the requests started during it or the second after.
func (e *env) drive(url, name, csvName string, acts []func() error) (row, error) {
	l, err := load.Start(e.ctx, load.Options{URL: url, Clients: e.opts.concurrency})
	if err != nil {
		return row{}, err
	}
	begin := time.Now()
	r := row{name: name}
	for i, act := range acts {
		time.Sleep(time.Until(begin.Add(e.opts.duration * time.Duration(i+1) / time.Duration(len(acts)+1))))
		start := time.Now()
		if err := act(); err != nil {
			r.errs = append(r.errs, fmt.Sprintf("event %d: %v", i+1, err))
		}
		end := time.Now()
		r.events = append(r.events, load.Window{From: start, To: end})
		r.windows = append(r.windows, load.Window{From: start, To: end.Add(time.Second)})
	}
	time.Sleep(time.Until(begin.Add(e.opts.duration)))
	r.res = l.Stop()
	r.sum = r.res.Summary()
	r.steady = r.res.Outside(r.windows...).Summary()
	r.failedAround = r.res.FailedNearest(r.events)
	if e.opts.csvDir != "" {
		if err := r.res.SaveCSV(filepath.Join(e.opts.csvDir, csvName)); err != nil {
			return r, err
		}
	}
	return r, nil
}

func (e *env) restart(unit string) func() error {
	return func() error {
		_, err := e.mgr.Systemctl(e.ctx, "restart", unit)
		return err
	}
}

// kill9 kills the main process and waits until the service is active with
// a new one.
func (e *env) kill9(unit string) func() error {
	return func() error {
		old, err := e.mgr.MainPID(e.ctx, unit)
		if err != nil || old == 0 {
			return fmt.Errorf("main pid of %s: %v", unit, err)
		}
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			return err
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			pid, _ := e.mgr.MainPID(e.ctx, unit)
			st, _ := e.mgr.Show(e.ctx, unit, "ActiveState")
			if pid != 0 && pid != old && st == "active" {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		return fmt.Errorf("%s did not come back after kill -9", unit)
	}
}

func batonScenario(e *env) (row, error) {
	port, err := load.FreePort()
	if err != nil {
		return row{}, err
	}
	bin := filepath.Join(e.dir, "baton")
	cfg := filepath.Join(e.dir, "baton.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("command = [%q]\nworkers = %d\nsurge = 2\n\n[sockets.web]\nlisten = \"tcp://127.0.0.1:%d\"\nbacklog = 4096\n", filepath.Join(e.dir, "hello"), e.opts.workers, port)), 0o644); err != nil {
		return row{}, err
	}
	if err := e.mgr.WriteUnit(e.ctx, "bench-baton.service", fmt.Sprintf("[Service]\nType=notify\nNotifyAccess=main\nKillMode=mixed\nExitType=cgroup\nFileDescriptorStoreMax=4\nRestart=on-failure\nRestartSec=100ms\nRuntimeDirectory=bench-baton\nEnvironment=HELLO_REPORT_REQUESTS=0\nStandardOutput=append:%s/baton.log\nStandardError=append:%s/baton.log\nExecStart=%s run -c %s\nExecReload=%s reload --wait\n", e.dir, e.dir, bin, cfg, bin)); err != nil {
		return row{}, err
	}
	if _, err := e.mgr.Systemctl(e.ctx, "start", "bench-baton.service"); err != nil {
		return row{}, err
	}
	defer e.mgr.Systemctl(e.ctx, "stop", "bench-baton.service")
	upgrade := func() error {
		b, err := os.ReadFile(filepath.Join(e.dir, "baton-v2"))
		if err != nil {
			return err
		}
		if err := os.WriteFile(bin+".new", b, 0o755); err != nil {
			return err
		}
		if err := os.Rename(bin+".new", bin); err != nil {
			return err
		}
		before, _ := e.mgr.MainPID(e.ctx, "bench-baton.service")
		if _, err := e.mgr.Systemctl(e.ctx, "reload", "bench-baton.service"); err != nil {
			return err
		}
		if after, _ := e.mgr.MainPID(e.ctx, "bench-baton.service"); after != before {
			return fmt.Errorf("upgrade changed the main pid from %d to %d", before, after)
		}
		return nil
	}
	u := "bench-baton.service"
	return e.drive(fmt.Sprintf("http://127.0.0.1:%d/", port), "baton (restart x3, kill -9, upgrade)", "baton.csv", []func() error{e.restart(u), e.restart(u), e.restart(u), e.kill9(u), upgrade})
}

func plainScenario(e *env) (row, error) {
	port, err := load.FreePort()
	if err != nil {
		return row{}, err
	}
	if err := e.mgr.WriteUnit(e.ctx, "bench-plain.service", fmt.Sprintf("[Service]\nType=notify\nRestart=on-failure\nRestartSec=100ms\nStandardOutput=append:%s/plain.log\nStandardError=append:%s/plain.log\nExecStart=%s -addr 127.0.0.1:%d\n", e.dir, e.dir, filepath.Join(e.dir, "hello"), port)); err != nil {
		return row{}, err
	}
	if _, err := e.mgr.Systemctl(e.ctx, "start", "bench-plain.service"); err != nil {
		return row{}, err
	}
	defer e.mgr.Systemctl(e.ctx, "stop", "bench-plain.service")
	u := "bench-plain.service"
	return e.drive(fmt.Sprintf("http://127.0.0.1:%d/", port), "plain, binds its own socket (restart x3, kill -9)", "plain.csv", []func() error{e.restart(u), e.restart(u), e.restart(u), e.kill9(u)})
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

// ratio is a/b as "2.3x", or "-" without a steady p99.
func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fx", float64(a)/float64(b))
}
