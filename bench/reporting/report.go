package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/batonhq/baton/bench/load"
)

func (r runResult) kind() string {
	if r.fixed {
		return "fixed rate"
	}
	return "closed loop"
}

func (r runResult) line() string {
	if r.err != nil {
		return fmt.Sprintf("%s round %d %s: %v", r.c.name, r.round, r.kind(), r.err)
	}
	return fmt.Sprintf("%s round %d %s: %s; CPU per request %s, supervisor %.1f%% of a core, load %s",
		r.c.name, r.round, r.kind(), r.sum, r.cpuPerRequest, 100*r.supervisor, r.load)
}

// agg is a case's runs of one kind, summarised by medians.
type agg struct {
	c                     benchCase
	runs                  []runResult
	perSecond             float64
	p50, p99, max         time.Duration
	cpuPerRequest         time.Duration
	supervisor            float64
	failed, missed, total int
	loads                 []string
}

func aggregate(res *results, fixed bool) []agg {
	by := map[string]*agg{}
	var order []string
	for _, r := range res.runs {
		if r.fixed != fixed || r.err != nil {
			continue
		}
		a, ok := by[r.c.name]
		if !ok {
			a = &agg{c: r.c}
			by[r.c.name] = a
			order = append(order, r.c.name)
		}
		a.runs = append(a.runs, r)
	}
	var out []agg
	for _, name := range order {
		a := by[name]
		var ps, sup []float64
		var p50, p99, max, cpu []time.Duration
		for _, r := range a.runs {
			ps = append(ps, r.sum.PerSecond)
			sup = append(sup, r.supervisor)
			p50, p99, max, cpu = append(p50, r.sum.P50), append(p99, r.sum.P99), append(max, r.sum.Max), append(cpu, r.cpuPerRequest)
			a.failed += r.sum.Failed
			a.missed += r.sum.Missed
			a.total += r.sum.Requests
			a.loads = append(a.loads, r.load)
		}
		a.perSecond, a.supervisor = median(ps), median(sup)
		a.p50, a.p99, a.max, a.cpuPerRequest = medianD(p50), medianD(p99), medianD(max), medianD(cpu)
		out = append(out, *a)
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func medianD(v []time.Duration) time.Duration {
	f := make([]float64, len(v))
	for i, d := range v {
		f[i] = float64(d)
	}
	return time.Duration(median(f))
}

// offOf is the baton case without reporting for the same process count.
func offOf(as []agg, c benchCase) *agg {
	for i := range as {
		if as[i].c.mode == off && as[i].c.processes == c.processes {
			return &as[i]
		}
	}
	return nil
}

func report(w io.Writer, o options, res *results) {
	fmt.Fprintf(w, "request reporting benchmark: examples/hello, GET /, keep-alive on, %d clients, %s per run, %d rounds (medians); %s\n\n", o.clients, o.duration, o.rounds, res.host)
	closed := aggregate(res, false)
	fmt.Fprintln(w, "Closed loop (maximum throughput):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| case | processes | reporting | req/s | vs off | p50 | p99 | CPU per request | baton's CPU | failed | req/s each round | load |")
	fmt.Fprintln(w, "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
	for _, a := range closed {
		var rounds []string
		for _, r := range a.runs {
			rounds = append(rounds, fmt.Sprintf("%.0f", r.sum.PerSecond))
		}
		vs := "-"
		if a.c.mode == off {
			vs = "(reference)"
		} else if ref := offOf(closed, a.c); ref != nil && ref.perSecond > 0 {
			vs = fmt.Sprintf("%+.1f%%", 100*(a.perSecond/ref.perSecond-1))
		}
		fmt.Fprintf(w, "| %s | %d | %s | %.0f | %s | %s | %s | %s | %s | %d of %d | %s | %s |\n",
			a.c.name, a.c.processes, a.c.mode, a.perSecond, vs, load.Round(a.p50), load.Round(a.p99), load.Round(a.cpuPerRequest), supervisor(a), a.failed, a.total, strings.Join(rounds, ", "), strings.Join(a.loads, ", "))
	}
	fixed := aggregate(res, true)
	fmt.Fprintf(w, "\nFixed rate (%g req/s):\n\n", o.rate)
	fmt.Fprintln(w, "| case | processes | reporting | p50 | p99 | max | CPU per request | vs off | baton's CPU | failed | missed | load |")
	fmt.Fprintln(w, "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, a := range fixed {
		vs := "-"
		if a.c.mode == off {
			vs = "(reference)"
		} else if ref := offOf(fixed, a.c); ref != nil && ref.cpuPerRequest > 0 {
			vs = fmt.Sprintf("%+.1f%%", 100*(float64(a.cpuPerRequest)/float64(ref.cpuPerRequest)-1))
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %d of %d | %d | %s |\n",
			a.c.name, a.c.processes, a.c.mode, load.Round(a.p50), load.Round(a.p99), load.Round(a.max), load.Round(a.cpuPerRequest), vs, supervisor(a), a.failed, a.total, a.missed, strings.Join(a.loads, ", "))
	}
	for _, s := range res.skipped {
		fmt.Fprintf(w, "\n%s\n", s)
	}
	for _, r := range res.runs {
		if r.err != nil {
			fmt.Fprintf(w, "\n%s round %d %s: %v\n", r.c.name, r.round, r.kind(), r.err)
		}
	}
}

func supervisor(a agg) string {
	if a.c.mode == alone {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*a.supervisor)
}
