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

	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/internal/systemdtest"
)

type options struct {
	duration    time.Duration
	concurrency int
	workers     int
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each run")
	flag.IntVar(&o.concurrency, "concurrency", 16, "concurrent clients")
	flag.IntVar(&o.workers, "workers", 4, "baton workers")
	flag.Parse()
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// row is one scenario's result.
type row struct {
	name   string
	events int
	sum    load.Summary
	errs   []string
}

type env struct {
	ctx  context.Context
	mgr  *systemdtest.Manager
	dir  string
	opts options
}

func run(ctx context.Context, o options, out io.Writer) error {
	dir, err := os.MkdirTemp("", "baton-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := load.Build(dir, map[string][]string{
		"baton":    {"./cmd/baton"},
		"baton-v2": {"-ldflags", "-X main.version=bench-2", "./cmd/baton"},
		"hello":    {"./examples/hello"},
	}); err != nil {
		return err
	}
	mgr, err := systemdtest.Start(ctx, dir)
	if err != nil {
		return err
	}
	defer mgr.Stop()
	e := &env{ctx: ctx, mgr: mgr, dir: dir, opts: o}
	var rows []row
	for _, sc := range []func(*env) (row, error){batonScenario, plainScenario} {
		rs, err := sc(e)
		if err != nil {
			return err
		}
		rows = append(rows, rs)
	}
	fmt.Fprintf(out, "restart benchmark: %d clients, fresh connection per request, %s per run, GET /\n\n", o.concurrency, o.duration)
	fmt.Fprintln(out, "| service | events | requests | failed | refused | reset | closed | timeout | non-2xx | other | p99 | max | failed around each event | worst latency around each event |")
	fmt.Fprintln(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
	for _, r := range rows {
		fmt.Fprintf(out, "| %s | %d | %d | %d |", r.name, r.events, r.sum.Requests, r.sum.FailedTotal)
		for _, k := range load.Kinds {
			fmt.Fprintf(out, " %d |", r.sum.Failed[k])
		}
		fmt.Fprintf(out, " %s | %s | %s | %s |\n", load.Round(r.sum.P99), load.Round(r.sum.Max), ints(r.sum.FailedAround), load.Durations(r.sum.WorstAround))
		for _, e := range r.errs {
			fmt.Fprintf(out, "\nevent failed: %s\n", e)
		}
	}
	return nil
}

// drive runs load while acts run at even intervals, each one event.
func (e *env) drive(url string, acts []func() error) (load.Summary, []string) {
	stop := make(chan struct{})
	done := make(chan []load.Sample, 1)
	go func() { done <- load.Run(url, e.opts.concurrency, false, stop) }()
	begin := time.Now()
	var events []load.Event
	var errs []string
	for i, act := range acts {
		time.Sleep(time.Until(begin.Add(e.opts.duration * time.Duration(i+1) / time.Duration(len(acts)+1))))
		ev := load.Event{Start: time.Now()}
		ev.Err = act()
		ev.End = time.Now()
		if ev.Err != nil {
			errs = append(errs, ev.Err.Error())
		}
		events = append(events, ev)
	}
	time.Sleep(time.Until(begin.Add(e.opts.duration)))
	close(stop)
	return load.Summarize(<-done, events, time.Since(begin)), errs
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
	if err := e.mgr.WriteUnit(e.ctx, "bench-baton.service", fmt.Sprintf("[Service]\nType=notify\nNotifyAccess=main\nKillMode=mixed\nFileDescriptorStoreMax=4\nRestart=on-failure\nRestartSec=100ms\nRuntimeDirectory=bench-baton\nEnvironment=HELLO_REPORT_REQUESTS=0\nStandardOutput=append:%s/baton.log\nStandardError=append:%s/baton.log\nExecStart=%s run -c %s\nExecReload=%s reload --wait\n", e.dir, e.dir, bin, cfg, bin)); err != nil {
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
	sum, errs := e.drive(fmt.Sprintf("http://127.0.0.1:%d/", port), []func() error{e.restart(u), e.restart(u), e.restart(u), e.kill9(u), upgrade})
	return row{name: "baton (restart x3, kill -9, upgrade)", events: 5, sum: sum, errs: errs}, nil
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
	sum, errs := e.drive(fmt.Sprintf("http://127.0.0.1:%d/", port), []func() error{e.restart(u), e.restart(u), e.restart(u), e.kill9(u)})
	return row{name: "plain, binds its own socket (restart x3, kill -9)", events: 4, sum: sum, errs: errs}, nil
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}
