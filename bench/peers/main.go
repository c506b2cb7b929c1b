package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/internal/systemdtest"
)

//go:embed apps
var apps embed.FS

type options struct {
	duration  time.Duration
	events    int
	clients   int
	workers   int
	systems   []string
	triggers  []trigger
	keepAlive []bool
	csvDir    string
	// want, when set, picks the rows to run among the chosen systems and
	// triggers.
	want func(*system, trigger) bool
	// log, when set, gets a line per row as it finishes.
	log func(string)
}

func main() {
	o := options{workers: 4}
	var sys, trig, ka string
	flag.DurationVar(&o.duration, "duration", 12*time.Second, "length of each row's run")
	flag.IntVar(&o.events, "events", 2, "triggers per row (a reload into a broken app is fired once)")
	flag.IntVar(&o.clients, "clients", 8, "concurrent clients")
	flag.StringVar(&sys, "systems", "", "comma-separated systems (default all): "+strings.Join(systemIDs(), ","))
	flag.StringVar(&trig, "triggers", "", "comma-separated triggers (default all): "+joinTriggers(triggers))
	flag.StringVar(&ka, "keepalive", "on,off", "keep-alive settings to run: on, off or both")
	flag.StringVar(&o.csvDir, "csv", "", "directory to write each row's requests to, one CSV per row")
	flag.Parse()
	var err error
	if o.systems, o.triggers, o.keepAlive, err = parseSelection(sys, trig, ka); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(2)
	}
	if o.csvDir != "" {
		if err := os.MkdirAll(o.csvDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "peers:", err)
			os.Exit(1)
		}
	}
	o.log = func(s string) { fmt.Fprintln(os.Stderr, s) }
	rows, err := run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
	report(os.Stdout, o, rows)
}

func systemIDs() []string {
	var ids []string
	for _, s := range systems() {
		ids = append(ids, s.id)
	}
	return ids
}

func joinTriggers(ts []trigger) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ",")
}

func parseSelection(sys, trig, ka string) ([]string, []trigger, []bool, error) {
	var ids []string
	known := map[string]bool{}
	for _, id := range systemIDs() {
		known[id] = true
	}
	for _, s := range splitList(sys) {
		if !known[s] {
			return nil, nil, nil, fmt.Errorf("-systems: unknown system %q (want %s)", s, strings.Join(systemIDs(), ", "))
		}
		ids = append(ids, s)
	}
	var ts []trigger
	for _, s := range splitList(trig) {
		found := false
		for _, t := range triggers {
			found = found || string(t) == s
		}
		if !found {
			return nil, nil, nil, fmt.Errorf("-triggers: unknown trigger %q (want %s)", s, joinTriggers(triggers))
		}
		ts = append(ts, trigger(s))
	}
	if len(ts) == 0 {
		ts = triggers
	}
	var kas []bool
	for _, s := range splitList(ka) {
		switch s {
		case "on":
			kas = append(kas, true)
		case "off":
			kas = append(kas, false)
		default:
			return nil, nil, nil, fmt.Errorf("-keepalive: %q: want on or off", s)
		}
	}
	if len(kas) == 0 {
		return nil, nil, nil, errors.New("-keepalive: want on, off or on,off")
	}
	return ids, ts, kas, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// env is what every row shares: one user manager, the apps, the builds.
type env struct {
	ctx      context.Context
	mgr      *systemdtest.Manager
	opts     options
	dir      string
	appDir   string
	modeFile string
	// baton is the binary the units run; batonV1 and batonV2 are two
	// builds that an upgrade renames over it in turn.
	baton, batonV1, batonV2 string
	upgrades                int
	units                   int
}

// run is one row: a system, a trigger, keep-alive on or off.
type rowRun struct {
	sys       *system
	trig      trigger
	keepAlive bool
	selfBound bool
	port      int
	// unit names the row's units: UNIT.service, UNIT.socket.
	unit string
	dir  string
	// files are written before the units start (configs).
	files map[string]string
}

func (r *rowRun) service() string { return r.unit + ".service" }
func (r *rowRun) socket() string  { return r.unit + ".socket" }

func run(ctx context.Context, o options) ([]row, error) {
	all := systems()
	var chosen []*system
	for _, s := range all {
		if len(o.systems) > 0 && !contains(o.systems, s.id) {
			continue
		}
		for _, t := range o.triggers {
			if s.how(t) != "" && (o.want == nil || o.want(s, t)) {
				chosen = append(chosen, s)
				break
			}
		}
	}
	if err := installPeers(chosen); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "baton-peers-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	e := &env{ctx: ctx, opts: o, dir: dir, appDir: filepath.Join(dir, "app"), modeFile: filepath.Join(dir, "mode")}
	if err := e.prepare(); err != nil {
		return nil, err
	}
	mgr, err := systemdtest.Start(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer mgr.Stop()
	e.mgr = mgr

	var rows []row
	for _, t := range o.triggers {
		for _, s := range chosen {
			if s.how(t) == "" || (o.want != nil && !o.want(s, t)) {
				continue
			}
			for _, ka := range o.keepAlive {
				r := e.row(s, t, ka)
				if o.log != nil {
					o.log(r.line())
				}
				rows = append(rows, r)
			}
		}
	}
	return rows, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// prepare builds baton (twice, for upgrades) and the example, and writes
// the apps.
func (e *env) prepare() error {
	bin := filepath.Join(e.dir, "bin")
	if err := os.MkdirAll(e.appDir, 0o755); err != nil {
		return err
	}
	if err := load.Build(bin, map[string][]string{
		"baton-v1": {"./cmd/baton"},
		"baton-v2": {"-ldflags", "-X main.version=bench-2", "./cmd/baton"},
	}); err != nil {
		return err
	}
	if err := load.Build(e.appDir, map[string][]string{"hello": {"./examples/hello"}}); err != nil {
		return err
	}
	e.batonV1, e.batonV2, e.baton = filepath.Join(bin, "baton-v1"), filepath.Join(bin, "baton-v2"), filepath.Join(bin, "baton")
	b, err := os.ReadFile(e.batonV1)
	if err != nil {
		return err
	}
	if err := os.WriteFile(e.baton, b, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"app.py", "config.ru", "hello-mode.sh"} {
		b, err := apps.ReadFile("apps/" + name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(e.appDir, name), b, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(e.modeFile, []byte("fast\n"), 0o644)
}

// installPeers installs the Debian packages the chosen systems need, only
// those missing, never upgrading what is installed.
func installPeers(chosen []*system) error {
	var missing []string
	for _, s := range chosen {
		for _, p := range s.packages {
			out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", p).Output()
			if !strings.HasSuffix(string(out), " installed") && !contains(missing, p) {
				missing = append(missing, p)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if b, err := exec.Command("apt-get", "update", "-q").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %v: %s", err, b)
	}
	cmd := exec.Command("apt-get", append([]string{"install", "-y", "-q", "--no-install-recommends", "--no-upgrade"}, missing...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install %s: %v: %s", strings.Join(missing, " "), err, b)
	}
	return nil
}

// row runs one row; what goes wrong is recorded in it, so one server that
// will not start does not end the benchmark.
func (e *env) row(s *system, t trigger, keepAlive bool) row {
	e.units++
	r := &rowRun{sys: s, trig: t, keepAlive: keepAlive, selfBound: t.selfBound(), unit: fmt.Sprintf("peer%d-%s", e.units, s.id), files: map[string]string{}}
	out := row{sys: s, trig: t, keepAlive: keepAlive, load: loadAverage()}
	r.dir = filepath.Join(e.dir, r.unit)
	defer e.stop(r)
	if err := e.start(r); err != nil {
		out.errs = append(out.errs, fmt.Sprintf("start: %v", err))
		return out
	}
	e.drive(r, &out)
	if e.opts.csvDir != "" {
		name := fmt.Sprintf("%s-%s-keepalive-%s.csv", s.id, t, onOff(keepAlive))
		if err := out.res.SaveCSV(filepath.Join(e.opts.csvDir, name)); err != nil {
			out.errs = append(out.errs, err.Error())
		}
	}
	return out
}

// start writes the row's files and units, starts them and waits until the
// server answers.
func (e *env) start(r *rowRun) error {
	port, err := load.FreePort()
	if err != nil {
		return err
	}
	r.port = port
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(e.modeFile, []byte("fast\n"), 0o644); err != nil {
		return err
	}
	svc := r.sys.service(e, r)
	for path, body := range r.files {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			return err
		}
	}
	units := []string{r.service()}
	if !r.selfBound {
		if err := e.mgr.WriteUnit(e.ctx, r.socket(), fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\nFileDescriptorName=web\nBacklog=4096\n", r.port)); err != nil {
			return err
		}
		units = append([]string{r.socket()}, units...)
	}
	if err := e.mgr.WriteUnit(e.ctx, r.service(), svc); err != nil {
		return err
	}
	if _, err := e.mgr.Systemctl(e.ctx, append([]string{"start"}, units...)...); err != nil {
		return fmt.Errorf("%w\n%s", err, e.tail(r))
	}
	// Type=notify units are ready when systemctl returns, but gunicorn
	// and puma say READY=1 before their workers have loaded the app: wait
	// for an answer, then warm up for a second.
	url := r.url(r.sys.path)
	if err := e.waitFor(60*time.Second, "answer from "+url, func() bool {
		res, err := load.Run(e.ctx, load.Options{URL: url, Requests: 1, Timeout: 2 * time.Second})
		return err == nil && res.Summary().OK == 1
	}); err != nil {
		return fmt.Errorf("%w\n%s", err, e.tail(r))
	}
	_, err = load.Run(e.ctx, load.Options{URL: url, Clients: e.opts.clients, Duration: time.Second, KeepAlive: r.keepAlive})
	return err
}

func (r *rowRun) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", r.port, path) }

// stop stops the row's units and puts the app back to its fast mode.
func (e *env) stop(r *rowRun) {
	_ = os.WriteFile(e.modeFile, []byte("fast\n"), 0o644)
	_, _ = e.mgr.Systemctl(e.ctx, "stop", r.service(), r.socket())
	_, _ = e.mgr.Systemctl(e.ctx, "reset-failed")
}

// tail is the end of a row's log, for errors.
func (e *env) tail(r *rowRun) string {
	b, _ := os.ReadFile(filepath.Join(e.dir, r.unit+".log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// drive runs the load through the row's events: the first after a third
// of the run, the rest evenly spaced, and the run going on for at least 2 s
// after the last.
func (e *env) drive(r *rowRun, out *row) {
	l, err := load.Start(e.ctx, load.Options{URL: r.url(r.sys.path), Clients: e.opts.clients, KeepAlive: r.keepAlive})
	if err != nil {
		out.errs = append(out.errs, err.Error())
		return
	}
	begin := time.Now()
	n := r.trig.events(e.opts.events)
	var last time.Time
	for i := 0; i < n; i++ {
		time.Sleep(time.Until(begin.Add(e.opts.duration * time.Duration(i+1) / time.Duration(n+1))))
		start := time.Now()
		exit, err := e.fire(r, r.trig)
		end := time.Now()
		last = end
		out.exits = append(out.exits, exit)
		if err != nil {
			out.errs = append(out.errs, fmt.Sprintf("event %d: %v", i+1, err))
		}
		out.events = append(out.events, load.Window{From: start, To: end})
		out.windows = append(out.windows, load.Window{From: start, To: end.Add(time.Second)})
	}
	endAt := begin.Add(e.opts.duration)
	if min := last.Add(2 * time.Second); endAt.Before(min) {
		endAt = min
	}
	time.Sleep(time.Until(endAt))
	out.res = l.Stop()
	out.sum = out.res.Summary()
	// Steady is before the first trigger: what a trigger leaves behind
	// can last longer than the second after it (a server that died).
	if len(out.events) > 0 {
		out.steady = out.res.Within(load.Window{From: out.res.Begin, To: out.events[0].From}).Summary()
	}
	out.lastSecond = out.res.Within(load.Window{From: out.res.End.Add(-time.Second), To: out.res.End}).Summary().OK
}

// loadAverage is /proc/loadavg's 1-minute figure, for the record.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
