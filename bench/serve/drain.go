package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/batonhq/baton/internal/systemdtest"
)

// runDrain starts baton from a .socket unit under a private systemd user
// manager, drives it with keep-alive clients that never retry, and reloads
// it at even intervals: every reload drains every worker while its
// connections are busy or idle. Any failed request is the drain's.
// drainResult is what a drain run saw.
type drainResult struct {
	load    *tally
	reloads []error
}

func runDrain(ctx context.Context, o options, out io.Writer) (*drainResult, error) {
	dir, err := os.MkdirTemp("", "baton-bench-drain-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := build(dir); err != nil {
		return nil, err
	}
	hello, label := filepath.Join(dir, "hello"), "examples/hello (package serve)"
	if o.hello != "" {
		if hello, err = filepath.Abs(o.hello); err != nil {
			return nil, err
		}
		label = o.hello
		// The unit runs it from dir, like the built one.
		b, err := exec.Command("cp", hello, filepath.Join(dir, "hello-other")).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("copy %s: %v: %s", hello, err, b)
		}
		hello = filepath.Join(dir, "hello-other")
	}
	mgr, err := systemdtest.Start(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer mgr.Stop()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "drain.toml")
	command := fmt.Sprintf("%q", hello)
	if o.quiet > 0 {
		command += fmt.Sprintf(", \"-quiet-window\", %q", o.quiet.String())
	}
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("command = [%s]\nworkers = %d\nsurge = 2\n", command, o.workers)), 0o644); err != nil {
		return nil, err
	}
	if err := mgr.WriteUnit(ctx, "drain.socket", fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\nFileDescriptorName=web\nBacklog=4096\n", port)); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "drain.log")
	baton := filepath.Join(dir, "baton")
	if err := mgr.WriteUnit(ctx, "drain.service", fmt.Sprintf("[Service]\nType=notify\nNotifyAccess=main\nKillMode=mixed\nRuntimeDirectory=drain\nStandardOutput=append:%s\nStandardError=append:%s\nExecStart=%s run -c %s\nExecReload=%s reload --wait\n",
		logPath, logPath, baton, cfg, baton)); err != nil {
		return nil, err
	}
	if _, err := mgr.Systemctl(ctx, "start", "drain.socket", "drain.service"); err != nil {
		return nil, err
	}
	stop := make(chan struct{})
	done := make(chan *tally, 1)
	go func() { done <- drive(fmt.Sprintf("127.0.0.1:%d", port), o.path, o.concurrency, o.think, stop) }()
	begin := time.Now()
	var reloadErrs []error
	var took []time.Duration
	for i := 1; i <= o.reloads; i++ {
		if err := sleep(ctx, time.Until(begin.Add(o.duration*time.Duration(i)/time.Duration(o.reloads+1)))); err != nil {
			break
		}
		t0 := time.Now()
		if _, err := mgr.Systemctl(ctx, "reload", "drain.service"); err != nil {
			reloadErrs = append(reloadErrs, err)
		}
		took = append(took, time.Since(t0))
	}
	werr := sleep(ctx, time.Until(begin.Add(o.duration)))
	close(stop)
	t := <-done
	elapsed := time.Since(begin)
	if _, err := mgr.Systemctl(context.WithoutCancel(ctx), "stop", "drain.service", "drain.socket"); err != nil {
		return nil, err
	}
	if werr != nil {
		return nil, werr
	}

	fmt.Fprintf(out, "keep-alive drain: %d workers, %d keep-alive clients (every other one pausing up to %s between requests), %s, %d reloads, GET %s\n\n", o.workers, o.concurrency, o.think, o.duration, o.reloads, o.path)
	fmt.Fprintln(out, "| example | requests | req/s | failed | refused | reset | closed | timeout | non-2xx | other | answered Connection: close | p50 | p99 | max | reloads took |")
	fmt.Fprintln(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	p50, p99 := percentiles(t.latencies)
	var maxLat time.Duration
	for _, l := range t.latencies {
		maxLat = max(maxLat, l)
	}
	fmt.Fprintf(out, "| %s | %d | %.0f | %d |", label, t.requests, float64(t.requests)/elapsed.Seconds(), t.failedTotal())
	for _, k := range kinds {
		fmt.Fprintf(out, " %d |", t.failed[k])
	}
	var tk []string
	for _, d := range took {
		tk = append(tk, round(d))
	}
	fmt.Fprintf(out, " %d | %s | %s | %s | %v |\n", t.closes, round(p50), round(p99), round(maxLat), tk)
	for _, k := range kinds {
		if e, ok := t.firstErr[k]; ok {
			fmt.Fprintf(out, "\nfirst %s: %s\n", k, e)
		}
	}
	for _, e := range reloadErrs {
		fmt.Fprintf(out, "\nreload failed: %v\n", e)
	}
	return &drainResult{load: t, reloads: reloadErrs}, nil
}
