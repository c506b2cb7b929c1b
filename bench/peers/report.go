package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/batonhq/baton/bench/load"
)

// row is one row's result.
type row struct {
	sys       *system
	trig      trigger
	keepAlive bool
	// load is the 1-minute load average when the row started.
	load string
	res  *load.Result
	sum  load.Summary
	// steady is the requests that ended before the first trigger.
	steady load.Summary
	// events are the triggers' spans; windows run to a second after each.
	events, windows []load.Window
	// exits are the trigger commands' exit statuses.
	exits []string
	// lastSecond is the requests answered in the run's last second.
	lastSecond int
	errs       []string
}

// worst is the worst latency of each window.
func (r row) worst() []time.Duration {
	var w []time.Duration
	for _, win := range r.windows {
		w = append(w, r.res.Worst(win))
	}
	return w
}

func (r row) ratios() []string {
	var out []string
	for _, w := range r.worst() {
		out = append(out, ratio(w, r.steady.P99))
	}
	return out
}

// line is a one-line summary, logged as each row finishes.
func (r row) line() string {
	if r.res == nil {
		return fmt.Sprintf("%s, %s, keep-alive %s: %s", r.sys.name, r.trig.describe(), onOff(r.keepAlive), strings.Join(r.errs, "; "))
	}
	s := fmt.Sprintf("%s, %s (%s), keep-alive %s: exit %s, %d requests, %d failed (%s), p99 %s, steady p99 %s, worst after %s (%s), %d ok in the last second, load %s",
		r.sys.name, r.trig.describe(), r.sys.how(r.trig), onOff(r.keepAlive), strings.Join(r.exits, ","), r.sum.Requests, r.sum.Failed, r.sum.FailedKinds(),
		load.Round(r.sum.P99), load.Round(r.steady.P99), load.Durations(r.worst()), strings.Join(r.ratios(), ", "), r.lastSecond, r.load)
	if len(r.errs) > 0 {
		s += "; " + strings.Join(r.errs, "; ")
	}
	return s
}

func report(w io.Writer, o options, res *results) {
	rows := res.rows
	fmt.Fprintf(w, "peers benchmark: %d workers each, app sleeps 50 ms per request, %d clients, closed loop, %s per row, %d events per row (1 for a broken app); %s\n\n",
		o.workers, o.clients, o.duration, o.events, res.host)
	fmt.Fprint(w, "| server | trigger | how | keep-alive | exit | requests | failed |")
	for _, k := range load.Kinds {
		fmt.Fprintf(w, " %s |", k)
	}
	fmt.Fprintln(w, " p99 | max | steady p99 | worst after trigger | worst / steady p99 | ok in last 1 s | load |")
	fmt.Fprint(w, "| --- | --- | --- | --- | --- | ---: | ---: |")
	for range load.Kinds {
		fmt.Fprint(w, " ---: |")
	}
	fmt.Fprintln(w, " ---: | ---: | ---: | --- | --- | ---: | ---: |")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |", r.sys.name, r.trig.describe(), r.sys.how(r.trig), onOff(r.keepAlive))
		if r.res == nil {
			fmt.Fprintf(w, " did not run: see below |\n")
			continue
		}
		fmt.Fprintf(w, " %s | %d | %d |", strings.Join(r.exits, ", "), r.sum.Requests, r.sum.Failed)
		for _, k := range load.Kinds {
			fmt.Fprintf(w, " %d |", r.sum.ByKind[k])
		}
		fmt.Fprintf(w, " %s | %s | %s | %s | %s | %d | %s |\n", load.Round(r.sum.P99), load.Round(r.sum.Max), load.Round(r.steady.P99),
			load.Durations(r.worst()), strings.Join(r.ratios(), ", "), r.lastSecond, r.load)
	}
	for _, r := range rows {
		for _, e := range r.errs {
			fmt.Fprintf(w, "\n%s, %s, keep-alive %s: %s\n", r.sys.name, r.trig.describe(), onOff(r.keepAlive), e)
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
