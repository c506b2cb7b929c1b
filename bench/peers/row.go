package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/batonhq/baton/bench/host"
	"github.com/batonhq/baton/bench/load"
)

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

// row runs one row; what goes wrong is recorded in it, so one server that
// will not start does not end the benchmark.
func (e *env) row(s *system, t trigger, keepAlive bool) row {
	e.units++
	r := &rowRun{sys: s, trig: t, keepAlive: keepAlive, selfBound: t.selfBound(), unit: fmt.Sprintf("peer%d-%s", e.units, s.id), files: map[string]string{}}
	out := row{sys: s, trig: t, keepAlive: keepAlive, load: host.LoadAverage1()}
	r.dir = filepath.Join(e.dir, r.unit)
	defer e.stop(r)
	if err := e.start(r); err != nil {
		out.errs = append(out.errs, fmt.Sprintf("start: %v", err))
		return out
	}
	e.drive(r, &out)
	if e.opts.csvDir != "" {
		name := fmt.Sprintf("%s-%s-keepalive-%s", s.id, t, onOff(keepAlive))
		if err := out.res.SaveCSV(filepath.Join(e.opts.csvDir, name+".csv")); err != nil {
			out.errs = append(out.errs, err.Error())
		}
		// The server's own log, to see what it did meanwhile.
		if b, err := os.ReadFile(filepath.Join(e.dir, r.unit+".log")); err == nil {
			if err := os.WriteFile(filepath.Join(e.opts.csvDir, name+".log"), b, 0o644); err != nil {
				out.errs = append(out.errs, err.Error())
			}
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
	// and puma say READY=1 before their workers have loaded the app:
	// warm up until every worker has answered (each answer names its
	// pid) and a whole second of load went through without a failure.
	url := r.url(r.sys.path)
	want := e.opts.workers
	if r.sys.id == "go" {
		want = 1
	}
	seen := map[string]bool{}
	if err := e.waitFor(60*time.Second, fmt.Sprintf("answers from %d workers at %s", want, url), func() bool {
		res, err := load.Run(e.ctx, load.Options{URL: url, Clients: e.opts.clients, Duration: time.Second, KeepAlive: r.keepAlive, BodyLine: true, Timeout: 2 * time.Second})
		if err != nil {
			return false
		}
		for _, x := range res.Records {
			if pid := pidOf(x.Line); x.Kind == load.OK && pid != "" {
				seen[pid] = true
			}
		}
		return len(seen) >= want && res.Summary().Failed == 0 && res.Summary().OK > 0
	}); err != nil {
		return fmt.Errorf("%w\n%s", err, e.tail(r))
	}
	return nil
}

// pidOf is the pid an answer names ("... pid 4711"), "" when none.
func pidOf(line string) string {
	f := strings.Fields(line)
	for i := len(f) - 2; i >= 0; i-- {
		if f[i] == "pid" {
			return f[i+1]
		}
	}
	return ""
}

// before is the requests that ended before t: the run undisturbed by a
// trigger at t (a request in flight when it began is not).
func before(res *load.Result, t time.Time) *load.Result {
	out := &load.Result{Begin: res.Begin, End: t}
	for _, x := range res.Records {
		if x.Start.Add(x.Latency).Before(t) {
			out.Records = append(out.Records, x)
		}
	}
	return out
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
		out.steady = before(out.res, out.events[0].From).Summary()
	}
	out.lastSecond = out.res.Within(load.Window{From: out.res.End.Add(-time.Second), To: out.res.End}).Summary().OK
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
