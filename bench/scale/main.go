package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/bench/host"
	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/internal/systemdtest"
)

type options struct {
	workers []int
	// surge is the larger surge (the smaller is 1), capped at N.
	surge    int
	window   time.Duration
	gunicorn int
	// rate is the light load during reloads, requests per second.
	rate       float64
	profileDir string
	csvDir     string
	log        func(string)
}

func main() {
	var o options
	var workers string
	flag.StringVar(&workers, "workers", "1,10,100,1000", "pool sizes to measure, comma-separated")
	flag.IntVar(&o.surge, "surge", 100, "the larger reload surge (the smaller is 1)")
	flag.DurationVar(&o.window, "window", 10*time.Second, "CPU measuring window")
	flag.IntVar(&o.gunicorn, "gunicorn", 100, "gunicorn sync workers to compare with (0: none)")
	flag.Float64Var(&o.rate, "rate", 100, "requests per second during reloads (keep-alive off)")
	flag.StringVar(&o.profileDir, "profile", "", "directory for CPU profiles of baton (builds baton with a pprof endpoint)")
	flag.StringVar(&o.csvDir, "csv", "", "directory to write the requests made during reloads to, one CSV per reload")
	flag.Parse()
	for _, f := range strings.Split(workers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "scale: -workers: %q is not a positive number\n", f)
			os.Exit(2)
		}
		o.workers = append(o.workers, n)
	}
	for _, d := range []string{o.csvDir, o.profileDir} {
		if d == "" {
			continue
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "scale:", err)
			os.Exit(1)
		}
	}
	o.log = func(s string) { fmt.Fprintln(os.Stderr, s) }
	res, err := run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
	report(os.Stdout, o, res)
}

// env is what the rows share.
type env struct {
	ctx   context.Context
	mgr   *systemdtest.Manager
	opts  options
	dir   string
	baton string
	hello string
	units int
}

// results are the rows and the machine they ran on.
type results struct {
	host string
	rows []row
}

func run(ctx context.Context, o options) (*results, error) {
	res := &results{}
	var err error
	if res.host, err = prepareHost(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "baton-scale-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	e := &env{ctx: ctx, opts: o, dir: dir, baton: filepath.Join(dir, "baton"), hello: filepath.Join(dir, "hello")}
	if err := e.build(); err != nil {
		return nil, err
	}
	mgr, err := systemdtest.Start(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer mgr.Stop()
	e.mgr = mgr
	for _, n := range o.workers {
		r := e.batonRow(n)
		e.logRow(r)
		res.rows = append(res.rows, r)
	}
	if o.gunicorn > 0 {
		r := e.gunicornRow(o.gunicorn)
		e.logRow(r)
		res.rows = append(res.rows, r)
	}
	return res, nil
}

func (e *env) logRow(r row) {
	if e.opts.log != nil {
		e.opts.log(r.line())
	}
}

// build builds the example and baton, with a pprof endpoint when
// profiling.
func (e *env) build() error {
	targets := map[string][]string{"hello": {"./examples/hello"}, "baton": {"./cmd/baton"}}
	if e.opts.profileDir != "" {
		overlay, err := pprofOverlay(e.dir)
		if err != nil {
			return err
		}
		targets["baton"] = []string{"-overlay", overlay, "./cmd/baton"}
	}
	return load.Build(e.dir, targets)
}

// row is one pool size's numbers.
type row struct {
	server  string
	workers int
	load    string
	// start is systemctl start to all workers ready.
	start time.Duration
	// steady and watchdog are the supervisor at rest, without and with
	// the workers' heartbeats.
	steady, watchdog usage
	// watchdogStart is the reload into the watchdog (surge 1), and
	// watchdogKills how many workers missed it from then to the end of the
	// window.
	watchdogStart time.Duration
	watchdogKills int
	// workersPSS sums the workers' proportional set sizes.
	workersPSS int64
	// reloads are the timed full reloads.
	reloads []reload
	stop    time.Duration
	// profiles are the CPU profiles taken, by phase.
	profiles []profile
	errs     []string
}

// usage is the supervisor over the measuring window.
type usage struct {
	cpu                 float64 // share of one core
	rss                 int64
	threads, fds, procs int
	measured            bool
	window              time.Duration
	heartbeatsPerSecond float64
	// machine is how many cores the whole machine kept busy meanwhile
	// (other work on it included): the baseline a reload's CPU adds to.
	machine float64
}

type reload struct {
	// supervisorCPU is the supervisor's CPU time during the reload,
	// machineCPU the whole machine's (every process, other work on the
	// machine included).
	supervisorCPU, machineCPU time.Duration
	// listenDrops is how many connections the machine's listeners dropped
	// meanwhile (a full accept queue).
	listenDrops int64
	surge       int
	took        time.Duration
	exit        string
	failed      int
	kinds       string
	reqs        int
}

type profile struct {
	phase string
	path  string
	top   string
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
