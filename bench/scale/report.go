package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/batonhq/baton/bench/load"
)

func (r row) line() string {
	s := fmt.Sprintf("%s, %d workers: ready after %s; steady %s; workers' PSS %s", r.server, r.workers, load.Round(r.start), r.steady, mib(r.workersPSS))
	for _, rl := range r.reloads {
		s += fmt.Sprintf("; reload surge %d: %s (exit %s, %d of %d requests failed: %s; CPU: supervisor %s, machine %s; listen drops %d)", rl.surge, load.Round(rl.took), rl.exit, rl.failed, rl.reqs, rl.kinds, load.Round(rl.supervisorCPU), load.Round(rl.machineCPU), rl.listenDrops)
	}
	if r.watchdog.measured {
		s += fmt.Sprintf("; reload into watchdog 1s (surge 1): %s, then %s, %d watchdog expiries", load.Round(r.watchdogStart), r.watchdog, r.watchdogKills)
	}
	s += fmt.Sprintf("; stop %s; load %s", load.Round(r.stop), r.load)
	if len(r.errs) > 0 {
		s += "; " + strings.Join(r.errs, "; ")
	}
	return s
}

func (u usage) String() string {
	if !u.measured {
		return "not measured"
	}
	return fmt.Sprintf("CPU %.2f%% of a core over %s (the machine: %.2f cores busy), RSS %s, %d threads, %d fds, %d processes in the unit", 100*u.cpu, u.window, u.machine, mib(u.rss), u.threads, u.fds, u.procs)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func report(w io.Writer, o options, res *results) {
	rows := res.rows
	fmt.Fprintf(w, "scale benchmark: CPU over %s windows, %g req/s (fresh connection each) during reloads; %s\n\n", o.window, o.rate, res.host)
	fmt.Fprintf(w, "| server | workers | start to all ready | supervisor RSS | supervisor CPU, steady | threads | fds | workers' PSS | reload, surge 1 | reload, surge %d | failed requests during reloads | stop | 1 s watchdog: reload into it, surge 1 | supervisor CPU | watchdog expiries | load average |\n", o.surge)
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |")
	for _, r := range rows {
		one, big := "-", "-"
		var failed []string
		for _, rl := range r.reloads {
			took := fmt.Sprintf("%s (CPU: %s supervisor, %s machine)", load.Round(rl.took), load.Round(rl.supervisorCPU), load.Round(rl.machineCPU))
			if rl.surge == 1 {
				one = took
			} else {
				big = took
				if strings.HasPrefix(r.server, "gunicorn") {
					big += " (all at once)"
				}
			}
			f := fmt.Sprintf("%d of %d", rl.failed, rl.reqs)
			if rl.failed > 0 {
				f += fmt.Sprintf(" (%s; %d listen drops)", rl.kinds, rl.listenDrops)
			}
			failed = append(failed, f)
		}
		wdStart, wd, wdKills := "-", "-", "-"
		if r.watchdog.measured {
			wdStart = load.Round(r.watchdogStart)
			wd = fmt.Sprintf("%.2f%% (%g heartbeats/s)", 100*r.watchdog.cpu, r.watchdog.heartbeatsPerSecond)
			wdKills = fmt.Sprint(r.watchdogKills)
		}
		cpu := "-"
		if r.steady.measured {
			cpu = fmt.Sprintf("%.2f%% (machine: %.2f cores busy)", 100*r.steady.cpu, r.steady.machine)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.server, r.workers, load.Round(r.start), mib(r.steady.rss), cpu, r.steady.threads, r.steady.fds, mib(r.workersPSS),
			one, big, strings.Join(failed, ", "), load.Round(r.stop), wdStart, wd, wdKills, r.load)
	}
	for _, r := range rows {
		for _, e := range r.errs {
			fmt.Fprintf(w, "\n%s, %d workers: %s\n", r.server, r.workers, e)
		}
	}
	for _, r := range rows {
		for _, p := range r.profiles {
			fmt.Fprintf(w, "\nCPU profile of baton, %d workers, %s (%s):\n%s", r.workers, p.phase, p.path, p.top)
		}
	}
}
