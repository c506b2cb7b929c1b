package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/batonhq/baton/bench/host"
	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/bench/procstat"
	"github.com/batonhq/baton/internal/systemdtest"
)

type options struct {
	duration time.Duration
	clients  int
	rate     float64
	rounds   int
	csvDir   string
	// cases, when set, picks the cases to run by name.
	cases []string
	log   func(string)
}

func main() {
	var o options
	var cases string
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each closed-loop and fixed-rate run")
	flag.IntVar(&o.clients, "clients", 32, "connections at once (closed loop; at most this many at a fixed rate)")
	flag.Float64Var(&o.rate, "rate", 1000, "requests per second of the fixed-rate runs")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of every case, interleaved; figures are medians")
	flag.StringVar(&cases, "cases", "", "comma-separated cases (default all): "+strings.Join(caseNames(allCases()), ","))
	flag.StringVar(&o.csvDir, "csv", "", "directory to write every run's requests to, one CSV per run")
	flag.Parse()
	for _, c := range strings.Split(cases, ",") {
		if c = strings.TrimSpace(c); c != "" {
			o.cases = append(o.cases, c)
		}
	}
	if o.csvDir != "" {
		if err := os.MkdirAll(o.csvDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "reporting:", err)
			os.Exit(1)
		}
	}
	o.log = func(s string) { fmt.Fprintln(os.Stderr, s) }
	res, err := run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reporting:", err)
		os.Exit(1)
	}
	report(os.Stdout, o, res)
}

// mode is how workers report requests.
type mode string

const (
	alone      mode = "alone (no baton)"
	off        mode = "off"
	datagrams  mode = "datagrams"
	scoreboard mode = "scoreboard"
)

// benchCase is one server set-up.
type benchCase struct {
	name      string
	mode      mode
	processes int
}

func allCases() []benchCase {
	var cs []benchCase
	for _, n := range []int{1, 4} {
		cs = append(cs,
			benchCase{fmt.Sprintf("alone-%d", n), alone, n},
			benchCase{fmt.Sprintf("off-%d", n), off, n},
			benchCase{fmt.Sprintf("datagrams-%d", n), datagrams, n},
			benchCase{fmt.Sprintf("scoreboard-%d", n), scoreboard, n},
		)
	}
	return cs
}

func caseNames(cs []benchCase) []string {
	var s []string
	for _, c := range cs {
		s = append(s, c.name)
	}
	return s
}

// results are every run, and what was left out and why.
type results struct {
	host    string
	runs    []runResult
	skipped []string
}

// runResult is one case in one round, closed loop or fixed rate.
type runResult struct {
	c     benchCase
	round int
	fixed bool
	sum   load.Summary
	// cpuPerRequest is the CPU time of all the case's processes divided
	// by the requests answered.
	cpuPerRequest time.Duration
	// supervisor is baton's share of one core (0 alone).
	supervisor float64
	load       string
	err        error
}

type env struct {
	ctx   context.Context
	mgr   *systemdtest.Manager
	opts  options
	dir   string
	baton string
	hello string
	units int
}

func run(ctx context.Context, o options) (*results, error) {
	res := &results{}
	var err error
	if res.host, err = prepareHost(); err != nil {
		return nil, err
	}
	var cases []benchCase
	board, why := scoreboardWired()
	for _, c := range allCases() {
		if len(o.cases) > 0 && !contains(o.cases, c.name) {
			continue
		}
		if c.mode == scoreboard && !board {
			res.skipped = append(res.skipped, fmt.Sprintf("%s: left out: %s", c.name, why))
			continue
		}
		cases = append(cases, c)
	}
	dir, err := os.MkdirTemp("", "baton-reporting-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	e := &env{ctx: ctx, opts: o, dir: dir, baton: filepath.Join(dir, "baton"), hello: filepath.Join(dir, "hello")}
	if err := load.Build(dir, map[string][]string{"baton": {"./cmd/baton"}, "hello": {"./examples/hello"}}); err != nil {
		return nil, err
	}
	mgr, err := systemdtest.Start(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer mgr.Stop()
	e.mgr = mgr
	for round := 1; round <= o.rounds; round++ {
		for _, c := range cases {
			for _, r := range e.runCase(c, round) {
				if o.log != nil {
					o.log(r.line())
				}
				res.runs = append(res.runs, r)
			}
		}
	}
	return res, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// scoreboardWired is whether baton and the example both use the
// scoreboard package, and if not, why.
func scoreboardWired() (bool, string) {
	const pkg = "github.com/batonhq/baton/scoreboard"
	root, err := load.ModuleRoot()
	if err != nil {
		return false, err.Error()
	}
	var missing []string
	for _, p := range []string{"./cmd/baton", "./examples/hello"} {
		cmd := exec.Command("go", "list", "-deps", p)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			return false, fmt.Sprintf("go list -deps %s: %v", p, err)
		}
		if !contains(strings.Fields(string(out)), pkg) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return false, fmt.Sprintf("the shared-memory scoreboard is not wired yet (%s does not use package %s)", strings.Join(missing, " and "), pkg)
	}
	return true, ""
}

// units are one case's running units.
type units struct {
	services []string
	socket   string
	port     int
}

// start writes and starts a case's units.
func (e *env) start(c benchCase) (units, error) {
	e.units++
	port, err := load.FreePort()
	if err != nil {
		return units{}, err
	}
	name := fmt.Sprintf("rep%d-%s", e.units, c.name)
	u := units{socket: name + ".socket", port: port}
	sock := fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\nFileDescriptorName=web\nBacklog=4096\n", port)
	if c.mode == alone {
		// A socket unit refuses to start without the service it would
		// activate; the processes get it through Sockets= anyway.
		sock += fmt.Sprintf("Service=%s-1.service\n", name)
	}
	if err := e.mgr.WriteUnit(e.ctx, u.socket, sock); err != nil {
		return u, err
	}
	log := filepath.Join(e.dir, name+".log")
	out := fmt.Sprintf("StandardOutput=append:%s\nStandardError=append:%s\n", log, log)
	if c.mode == alone {
		// One service per process, each handed the same socket (Sockets=),
		// as several copies of a plain service would be.
		for i := 1; i <= c.processes; i++ {
			svc := fmt.Sprintf("%s-%d.service", name, i)
			if err := e.mgr.WriteUnit(e.ctx, svc, fmt.Sprintf("[Service]\nType=notify\nSockets=%s\n%sExecStart=%s\n", u.socket, out, e.hello)); err != nil {
				return u, err
			}
			u.services = append(u.services, svc)
		}
	} else {
		cfg := fmt.Sprintf("command = [%q]\nworkers = %d\n", e.hello, c.processes)
		env := "HELLO_REPORT_REQUESTS=0 BATON_REQUEST_REPORTS=off"
		switch c.mode {
		case datagrams:
			cfg += "request-timeout = \"30s\"\n"
			env = "HELLO_REPORT_REQUESTS=1 BATON_REQUEST_REPORTS=notify"
		case scoreboard:
			cfg += "request-timeout = \"30s\"\n"
			env = "HELLO_REPORT_REQUESTS=0 BATON_REQUEST_REPORTS=scoreboard"
		}
		path := filepath.Join(e.dir, name+".toml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return u, err
		}
		svc := name + ".service"
		if err := e.mgr.WriteUnit(e.ctx, svc, fmt.Sprintf("[Service]\nType=notify\nNotifyAccess=main\nKillMode=mixed\nRuntimeDirectory=%s\nEnvironment=%s\n%sExecStart=%s run -c %s\n", name, env, out, e.baton, path)); err != nil {
			return u, err
		}
		u.services = []string{svc}
	}
	if _, err := e.mgr.Systemctl(e.ctx, append([]string{"start", u.socket}, u.services...)...); err != nil {
		b, _ := os.ReadFile(log)
		return u, fmt.Errorf("%w\n%s", err, b)
	}
	return u, nil
}

func (e *env) stop(u units) {
	_, _ = e.mgr.Systemctl(e.ctx, append([]string{"stop", u.socket}, u.services...)...)
	_, _ = e.mgr.Systemctl(e.ctx, "reset-failed")
}

// runCase starts a case, warms it up, runs the closed loop then the fixed
// rate, and stops it.
func (e *env) runCase(c benchCase, round int) []runResult {
	u, err := e.start(c)
	defer e.stop(u)
	if err != nil {
		return []runResult{{c: c, round: round, err: err}}
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", u.port)
	if _, err := load.Run(e.ctx, load.Options{URL: url, Clients: e.opts.clients, Duration: time.Second, KeepAlive: true}); err != nil {
		return []runResult{{c: c, round: round, err: err}}
	}
	var out []runResult
	for _, fixed := range []bool{false, true} {
		out = append(out, e.measure(c, u, url, round, fixed))
	}
	return out
}

func (e *env) measure(c benchCase, u units, url string, round int, fixed bool) runResult {
	r := runResult{c: c, round: round, fixed: fixed, load: host.LoadAverage1()}
	var pids []int
	supervisor := 0
	for _, svc := range u.services {
		ps, err := e.mgr.UnitProcs(e.ctx, svc)
		if err != nil {
			r.err = err
			return r
		}
		pids = append(pids, ps...)
		if c.mode != alone {
			supervisor, _ = e.mgr.MainPID(e.ctx, svc)
		}
	}
	before, err := sample(pids)
	if err != nil {
		r.err = err
		return r
	}
	o := load.Options{URL: url, Clients: e.opts.clients, Duration: e.opts.duration, KeepAlive: true}
	if fixed {
		o.Rate = e.opts.rate
	}
	res, err := load.Run(e.ctx, o)
	if err != nil {
		r.err = err
		return r
	}
	after, err := sample(pids)
	if err != nil {
		r.err = err
		return r
	}
	r.sum = res.Summary()
	var cpu time.Duration
	for pid, a := range after {
		cpu += a.CPU - before[pid].CPU
	}
	if r.sum.OK > 0 {
		r.cpuPerRequest = cpu / time.Duration(r.sum.OK)
	}
	if supervisor != 0 {
		r.supervisor = procstat.Share(before[supervisor], after[supervisor])
	}
	if e.opts.csvDir != "" {
		kind := "closed"
		if fixed {
			kind = "fixed"
		}
		if err := res.SaveCSV(filepath.Join(e.opts.csvDir, fmt.Sprintf("%s-%s-round%d.csv", c.name, kind, round))); err != nil {
			r.err = err
		}
	}
	return r
}

// sample reads every process; one that is gone is an error: a case's
// processes must live through its runs.
func sample(pids []int) (map[int]procstat.Sample, error) {
	out := map[int]procstat.Sample{}
	var errs []error
	for _, pid := range pids {
		s, err := procstat.Read(pid)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[pid] = s
	}
	return out, errors.Join(errs...)
}

// prepareHost gives the machine systemd's settings (bench/host) and
// describes it for the report.
func prepareHost() (string, error) {
	note, err := host.Prepare()
	if err != nil {
		return "", err
	}
	d := host.Describe()
	if note != "" {
		d += " (" + note + ")"
	}
	return d, nil
}
