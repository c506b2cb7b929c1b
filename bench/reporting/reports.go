package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/batonhq/baton/bench/host"
	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/bench/procstat"
)

// reportsResult is one case's numbers, beside its reference's.
type reportsResult struct {
	p pair
	// perSecond and refPerSecond are the medians over the rounds.
	perSecond, refPerSecond float64
	// cpu and refCPU are the medians over the rounds of the CPU time the
	// pools' processes spent per request answered.
	cpu, refCPU time.Duration
	on, ref     load.Summary
}

// measured is one pool's run: its requests and the CPU its processes spent.
type measured struct {
	res *load.Result
	cpu time.Duration
}

func (m measured) cpuPerRequest() time.Duration {
	if ok := m.res.Summary().OK; ok > 0 {
		return m.cpu / time.Duration(ok)
	}
	return 0
}

// runReports measures each case beside its reference, both pools at once,
// each with its own clients: they share the machine at the same moments,
// so what another process on a shared machine takes, it takes from both,
// and the ratio of their throughputs (closed loop) or of their CPU per
// request (fixed rate) is what the case costs. Rounds repeat that; the
// median ratio is reported.
func runReports(ctx context.Context, o options, out io.Writer) ([]reportsResult, error) {
	note, err := host.Prepare()
	if err != nil {
		return nil, err
	}
	pairs, skipped, err := reportsPairs(o.batonScoreboard, o.calibrate)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "baton-bench-reporting-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := build(dir); err != nil {
		return nil, err
	}
	// runs[p][round][0] is pair p's reference, [1] its case.
	runs := make([][][2]measured, len(pairs))
	for round := range o.rounds {
		for p, pr := range pairs {
			got, err := measureTogether(ctx, dir, o, pr.ref, pr.c)
			if err != nil {
				return nil, err
			}
			runs[p] = append(runs[p], got)
			fmt.Fprintf(os.Stderr, "round %d: %s %.0f req/s (%s per request), %s %.0f req/s (%s per request)\n", round+1,
				pr.ref.name, got[0].res.Summary().PerSecond, got[0].cpuPerRequest(), pr.c.name, got[1].res.Summary().PerSecond, got[1].cpuPerRequest())
			if o.csvDir != "" {
				for k, c := range pr.cases() {
					name := fmt.Sprintf("%s-beside-%s-round%d-%s.csv", pr.c.slug(), pr.ref.slug(), round+1, c.slug())
					if err := got[k].res.SaveCSV(filepath.Join(o.csvDir, name)); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	mode := "closed loop, " + fmt.Sprint(o.concurrency) + " keep-alive clients each"
	if o.rate > 0 {
		mode = fmt.Sprintf("%g requests/s each over %d keep-alive connections", o.rate, o.concurrency)
	}
	hostLine := host.Describe()
	if note != "" {
		hostLine += " (" + note + ")"
	}
	fmt.Fprintf(out, "request reporting: each case beside its reference, at once; %d workers each, %s, GET %s, %d rounds of %s; %s\n\n", o.workers, mode, o.path, o.rounds, o.duration, hostLine)
	res := summarise(pairs, runs)
	if o.rate > 0 {
		writeFixedRate(out, res)
	} else {
		writeClosedLoop(out, res, runs)
	}
	if skipped != "" {
		fmt.Fprintf(out, "\n%s\n", skipped)
	}
	for _, r := range res {
		for _, x := range []struct {
			name string
			s    load.Summary
		}{{r.p.ref.name, r.ref}, {r.p.c.name, r.on}} {
			if x.s.Failed > 0 {
				fmt.Fprintf(out, "\n%s: %d failed (%s)\n", x.name, x.s.Failed, x.s.FailedKinds())
			}
		}
	}
	return res, nil
}

func (p pair) cases() [2]reportsCase { return [2]reportsCase{p.ref, p.c} }

// summarise takes each pair's medians and all of its requests.
func summarise(pairs []pair, runs [][][2]measured) []reportsResult {
	var res []reportsResult
	for p, pr := range pairs {
		r := reportsResult{p: pr}
		var rates, refRates []float64
		var cpu, refCPU []float64
		var on, ref load.Result
		for _, got := range runs[p] {
			refRates = append(refRates, got[0].res.Summary().PerSecond)
			rates = append(rates, got[1].res.Summary().PerSecond)
			refCPU = append(refCPU, float64(got[0].cpuPerRequest()))
			cpu = append(cpu, float64(got[1].cpuPerRequest()))
			ref.Records = append(ref.Records, got[0].res.Records...)
			on.Records = append(on.Records, got[1].res.Records...)
		}
		r.perSecond, r.refPerSecond = median(rates), median(refRates)
		r.cpu, r.refCPU = time.Duration(median(cpu)), time.Duration(median(refCPU))
		r.on, r.ref = on.Summary(), ref.Summary()
		res = append(res, r)
	}
	return res
}

func writeClosedLoop(out io.Writer, res []reportsResult, runs [][][2]measured) {
	fmt.Fprintln(out, "| case | beside | req/s (median) | req/s beside it (median) | case/reference, each round | case vs reference (median) | CPU per request, case | CPU per request, beside | failed | p50 | p99 |")
	fmt.Fprintln(out, "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for p, r := range res {
		var ratios []float64
		var rs []string
		for _, got := range runs[p] {
			x := got[1].res.Summary().PerSecond / got[0].res.Summary().PerSecond
			ratios = append(ratios, x)
			rs = append(rs, fmt.Sprintf("%.2f", x))
		}
		fmt.Fprintf(out, "| %s | %s | %.0f | %.0f | %s | %+.1f%% | %s | %s | %d | %s | %s |\n", r.p.c.name, r.p.ref.name, r.perSecond, r.refPerSecond,
			strings.Join(rs, ", "), (median(ratios)-1)*100, load.Round(r.cpu), load.Round(r.refCPU), r.on.Failed+r.ref.Failed, load.Round(r.on.P50), load.Round(r.on.P99))
	}
}

func writeFixedRate(out io.Writer, res []reportsResult) {
	fmt.Fprintln(out, "| case | beside | p50 | p99 | p50 beside | p99 beside | CPU per request, case | CPU per request, beside | case vs reference, CPU per request | failed | missed |")
	fmt.Fprintln(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range res {
		vs := "-"
		if r.refCPU > 0 {
			vs = fmt.Sprintf("%+.1f%%", (float64(r.cpu)/float64(r.refCPU)-1)*100)
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d |\n", r.p.c.name, r.p.ref.name, load.Round(r.on.P50), load.Round(r.on.P99),
			load.Round(r.ref.P50), load.Round(r.ref.P99), load.Round(r.cpu), load.Round(r.refCPU), vs, r.on.Failed+r.ref.Failed, r.on.Missed+r.ref.Missed)
	}
}

// measureTogether runs two cases' pools at once, loads both with their
// own clients, and returns each one's records and the CPU its processes
// spent in the measured run (the warm-up not counted).
func measureTogether(ctx context.Context, dir string, o options, a, b reportsCase) ([2]measured, error) {
	var res [2]measured
	var pools [2]*pool
	stopAll := func() error {
		var errs []error
		for _, p := range pools {
			if p != nil {
				errs = append(errs, p.stop())
			}
		}
		return errors.Join(errs...)
	}
	for k, c := range [2]reportsCase{a, b} {
		p, err := startPool(dir, c, o.workers)
		if err != nil {
			return res, errors.Join(fmt.Errorf("%s: %w", c.name, err), stopAll())
		}
		pools[k] = p
	}
	run := func(d time.Duration) ([2]*load.Result, error) {
		var out [2]*load.Result
		var ls [2]*load.Load
		for k, p := range pools {
			l, err := load.Start(ctx, load.Options{URL: "http://" + p.addr + o.path, Clients: o.concurrency, Rate: o.rate, KeepAlive: true, Duration: d})
			if err != nil {
				for _, l := range ls[:k] {
					l.Stop()
				}
				return out, err
			}
			ls[k] = l
		}
		for k, l := range ls {
			out[k] = l.Wait()
		}
		return out, ctx.Err()
	}
	if _, err := run(o.warmup); err != nil {
		return res, errors.Join(err, stopAll())
	}
	var before [2]map[int]procstat.Sample
	var pids [2][]int
	for k, p := range pools {
		pids[k] = p.pids()
		before[k] = sample(pids[k])
	}
	got, err := run(o.duration)
	for k := range pools {
		after := sample(pids[k])
		for pid, s := range after {
			if b, ok := before[k][pid]; ok {
				res[k].cpu += s.CPU - b.CPU
			}
		}
		res[k].res = got[k]
	}
	return res, errors.Join(err, stopAll())
}

// sample reads the processes that are there; the pools' processes live
// through a run, so one missing only loses its share.
func sample(pids []int) map[int]procstat.Sample {
	out := map[int]procstat.Sample{}
	for _, pid := range pids {
		if s, err := procstat.Read(pid); err == nil {
			out[pid] = s
		}
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
