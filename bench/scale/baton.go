package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/bench/host"
	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/bench/procstat"
)

// settle is how long a pool is left alone after it started or reloaded
// before it is measured.
const settle = 3 * time.Second

// pool is one row's units.
type pool struct {
	unit string
	port int
	cfg  string
	log  string
}

func (p pool) service() string { return p.unit + ".service" }
func (p pool) socket() string  { return p.unit + ".socket" }
func (p pool) url() string     { return fmt.Sprintf("http://127.0.0.1:%d/", p.port) }

// newPool names a row's units and picks its port.
func (e *env) newPool(kind string) (pool, error) {
	e.units++
	port, err := load.FreePort()
	if err != nil {
		return pool{}, err
	}
	unit := fmt.Sprintf("scale%d-%s", e.units, kind)
	return pool{unit: unit, port: port, cfg: filepath.Join(e.dir, unit+".toml"), log: filepath.Join(e.dir, unit+".log")}, nil
}

// limits are the unit settings that let a pool of 1,000 run: fds for baton
// (a few per worker), tasks (threads) for the workers, no start timeout
// (systemd bounds ExecReload= by TimeoutStartSec= too), a long stop.
const limits = "LimitNOFILE=1048576\nTasksMax=infinity\nTimeoutStartSec=infinity\nTimeoutStopSec=10min\n"

func (e *env) batonRow(n int) row {
	r := row{server: "baton + examples/hello", workers: n, load: host.LoadAverage()}
	p, err := e.newPool("baton")
	if err != nil {
		r.errs = append(r.errs, err.Error())
		return r
	}
	defer e.stopPool(p)
	if msg := checkPIDs(n + e.opts.surge); msg != "" {
		r.errs = append(r.errs, msg)
	}
	writeCfg := func(surge int, watchdog bool) error {
		cfg := fmt.Sprintf("command = [%q]\nworkers = %d\nsurge = %d\n# All workers boot at once at start: give 1,000 on 2 cores the time.\nboot-timeout = \"10m\"\n", e.hello, n, surge)
		if watchdog {
			cfg += "watchdog-timeout = \"1s\"\n"
		}
		return os.WriteFile(p.cfg, []byte(cfg), 0o644)
	}
	if err := writeCfg(1, false); err != nil {
		r.errs = append(r.errs, err.Error())
		return r
	}
	env := "HELLO_REPORT_REQUESTS=0"
	if e.opts.profileDir != "" {
		env += " " + pprofEnv + "=" + e.pprofSocket(p)
	}
	svc := fmt.Sprintf("[Service]\nType=notify\nNotifyAccess=main\nKillMode=mixed\nRuntimeDirectory=%s\n%sEnvironment=%s\nStandardOutput=append:%s\nStandardError=append:%s\nExecStart=%s run -c %s\nExecReload=%s reload --wait\n",
		p.unit, limits, env, p.log, p.log, e.baton, p.cfg, e.baton)
	if err := e.startPool(p, svc, &r); err != nil {
		r.errs = append(r.errs, err.Error())
		return r
	}
	pid, err := e.mgr.MainPID(e.ctx, p.service())
	if err != nil {
		r.errs = append(r.errs, err.Error())
		return r
	}
	time.Sleep(settle)
	r.steady = e.measure(p, pid, &r)
	r.workersPSS = e.workersPSS(p, pid)
	e.profile(&r, p, "steady")

	surges := []int{1}
	if big := min(e.opts.surge, n); big > 1 {
		surges = append(surges, big)
	}
	for i, surge := range surges {
		if err := writeCfg(surge, false); err != nil {
			r.errs = append(r.errs, err.Error())
			return r
		}
		var wait func()
		if i == len(surges)-1 {
			wait = e.profileAsync(&r, p, "reload-surge-"+strconv.Itoa(surge))
		}
		r.reloads = append(r.reloads, e.reload(p, &r, pid, surge, func() (string, error) { return e.systemctl("reload", p.service()) }, nil))
		if wait != nil {
			wait()
		}
	}

	// The workers get the watchdog in a reload with surge 1, so that the
	// heartbeats grow one worker at a time: started with it, or reloaded
	// into it with surge 100, 300 workers on 2 cores never settled (each
	// worker that misses the watchdog is killed and replaced, which loads
	// the machine more; see docs/benchmarks.md).
	if err := writeCfg(1, true); err != nil {
		r.errs = append(r.errs, err.Error())
		return r
	}
	before := countLines(p.log, watchdogExpired...)
	started := time.Now()
	if exit, err := e.systemctl("reload", p.service()); err != nil || exit != "0" {
		r.watchdogKills = countLines(p.log, watchdogExpired...) - before
		r.errs = append(r.errs, fmt.Sprintf("reload into watchdog-timeout 1s (surge 1): exit %s, %v, %d workers missed the watchdog", exit, err, r.watchdogKills))
		return r
	}
	r.watchdogStart = time.Since(started)
	time.Sleep(settle)
	r.watchdog = e.measure(p, pid, &r)
	// The example (package serve) pings at half WATCHDOG_USEC: twice a
	// second each.
	r.watchdog.heartbeatsPerSecond = float64(n) * 2
	r.watchdogKills = countLines(p.log, watchdogExpired...) - before
	e.profile(&r, p, "watchdog")
	stopped := time.Now()
	if _, err := e.mgr.Systemctl(e.ctx, "stop", p.service()); err != nil {
		r.errs = append(r.errs, err.Error())
	}
	r.stop = time.Since(stopped)
	return r
}

// watchdogExpired is in baton's log line for each missed watchdog, the
// first step of its escalation ladder (the worker's exit line names the
// clock too, without "SIGKILL in").
var watchdogExpired = []string{"watchdog-timeout 1s expired", "SIGKILL in"}

// countLines counts a log's lines that contain every one of subs.
func countLines(path string, subs ...string) int {
	b, _ := os.ReadFile(path)
	n := 0
next:
	for _, line := range strings.Split(string(b), "\n") {
		for _, sub := range subs {
			if !strings.Contains(line, sub) {
				continue next
			}
		}
		n++
	}
	return n
}

// startPool writes the units and starts them, timing systemctl start.
func (e *env) startPool(p pool, svc string, r *row) error {
	if err := e.mgr.WriteUnit(e.ctx, p.socket(), fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\nFileDescriptorName=web\nBacklog=4096\n", p.port)); err != nil {
		return err
	}
	if err := e.mgr.WriteUnit(e.ctx, p.service(), svc); err != nil {
		return err
	}
	start := time.Now()
	exit, err := e.systemctl("start", p.socket(), p.service())
	if err != nil || exit != "0" {
		return fmt.Errorf("start: exit %s, %v\n%s", exit, err, tail(p.log))
	}
	r.start = time.Since(start)
	return nil
}

func (e *env) stopPool(p pool) {
	_, _ = e.mgr.Systemctl(e.ctx, "stop", p.service(), p.socket())
	_, _ = e.mgr.Systemctl(e.ctx, "reset-failed")
}

// measure samples the supervisor over the window.
func (e *env) measure(p pool, pid int, r *row) usage {
	u := usage{window: e.opts.window}
	a, err := procstat.Read(pid)
	ma, merr := procstat.ReadMachine()
	if err = errors.Join(err, merr); err != nil {
		r.errs = append(r.errs, err.Error())
		return u
	}
	time.Sleep(e.opts.window)
	b, err := procstat.Read(pid)
	mb, merr := procstat.ReadMachine()
	if err = errors.Join(err, merr); err != nil {
		r.errs = append(r.errs, err.Error())
		return u
	}
	procs, _ := e.mgr.UnitProcs(e.ctx, p.service())
	return usage{cpu: procstat.Share(a, b), rss: b.RSS, threads: b.Threads, fds: b.FDs, procs: len(procs), measured: true, window: e.opts.window,
		machine: float64(mb.Busy-ma.Busy) / float64(mb.At.Sub(ma.At))}
}

// workersPSS sums the proportional set sizes of the unit's processes other
// than the supervisor.
func (e *env) workersPSS(p pool, supervisor int) int64 {
	procs, _ := e.mgr.UnitProcs(e.ctx, p.service())
	var sum int64
	for _, pid := range procs {
		if pid == supervisor {
			continue
		}
		if v, err := procstat.PSS(pid); err == nil {
			sum += v
		}
	}
	return sum
}

// reload runs do (a full reload) under a light fixed-rate load with a
// fresh connection per request, and times it; done, when set, says when
// the reload is over (for servers whose reload command returns at once).
func (e *env) reload(p pool, r *row, supervisor, surge int, do func() (string, error), done func() error) reload {
	rl := reload{surge: surge}
	l, err := load.Start(e.ctx, load.Options{URL: p.url(), Rate: e.opts.rate, Clients: 64})
	if err != nil {
		r.errs = append(r.errs, err.Error())
		return rl
	}
	sup0, err0 := procstat.Read(supervisor)
	mach0, err1 := procstat.ReadMachine()
	drops0, err4 := host.ListenDrops()
	start := time.Now()
	exit, err := do()
	if err == nil && done != nil {
		err = done()
	}
	rl.took = time.Since(start)
	rl.exit = exit
	sup1, err2 := procstat.Read(supervisor)
	mach1, err3 := procstat.ReadMachine()
	drops1, err5 := host.ListenDrops()
	rl.listenDrops = drops1 - drops0
	if e := errors.Join(err0, err1, err2, err3, err4, err5); e != nil {
		r.errs = append(r.errs, fmt.Sprintf("reload (surge %d): CPU: %v", surge, e))
	} else {
		rl.supervisorCPU, rl.machineCPU = sup1.CPU-sup0.CPU, mach1.Busy-mach0.Busy
	}
	if err != nil {
		r.errs = append(r.errs, fmt.Sprintf("reload (surge %d): %v", surge, err))
	}
	if exit != "0" && exit != "-" {
		r.errs = append(r.errs, fmt.Sprintf("reload (surge %d) exit %s\n%s", surge, exit, tail(p.log)))
	}
	time.Sleep(time.Second)
	res := l.Stop()
	s := res.Summary()
	rl.failed, rl.kinds, rl.reqs = s.Failed, s.FailedKinds(), s.Requests
	if e.opts.csvDir != "" {
		name := fmt.Sprintf("%s-%d-surge-%d.csv", strings.ReplaceAll(strings.Fields(r.server)[0], "/", "-"), r.workers, surge)
		if err := res.SaveCSV(filepath.Join(e.opts.csvDir, name)); err != nil {
			r.errs = append(r.errs, err.Error())
		}
	}
	time.Sleep(settle)
	return rl
}

// commandTimeout bounds one start or reload: a pool that cannot settle is
// a result, not a hang.
const commandTimeout = 15 * time.Minute

// systemctl runs systemctl --user and returns its exit status.
func (e *env) systemctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(e.ctx, commandTimeout)
	defer cancel()
	out, err := e.mgr.Systemctl(ctx, args...)
	if err == nil {
		return "0", nil
	}
	if ctx.Err() != nil && e.ctx.Err() == nil {
		return "-", fmt.Errorf("still running after %s", commandTimeout)
	}
	if i := strings.Index(err.Error(), "exit status "); i >= 0 {
		return strings.Fields(err.Error()[i+len("exit status "):])[0], nil
	}
	return "-", fmt.Errorf("%w: %s", err, out)
}

// tail is the end of a log, for errors.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return string(b)
}

// checkPIDs says when kernel.pid_max leaves too little room for n more Go
// workers of about 8 threads each (every thread takes a pid), and raises
// it: a larger pid_max costs nothing until pids are used.
func checkPIDs(n int) string {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return ""
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return ""
	}
	// /proc/loadavg's fourth field is runnable/total scheduling entities.
	la, _ := os.ReadFile("/proc/loadavg")
	used := 0
	if f := strings.Fields(string(la)); len(f) > 3 {
		if i := strings.IndexByte(f[3], '/'); i >= 0 {
			used, _ = strconv.Atoi(f[3][i+1:])
		}
	}
	need := used + 8*n
	if need < max*9/10 {
		return ""
	}
	raised := 4194304
	if err := os.WriteFile("/proc/sys/kernel/pid_max", []byte(strconv.Itoa(raised)), 0o644); err != nil {
		return fmt.Sprintf("kernel.pid_max is %d, %d tasks run and %d workers need about %d more: raise it (sysctl kernel.pid_max=%d): %v", max, used, n, 8*n, raised, err)
	}
	return fmt.Sprintf("note: raised kernel.pid_max from %d to %d (%d tasks ran, %d workers need about %d more)", max, raised, used, n, 8*n)
}
