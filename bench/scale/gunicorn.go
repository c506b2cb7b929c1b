package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/batonhq/baton/bench/host"
	"github.com/batonhq/baton/internal/procfs"
)

// gunicornApp is the smallest WSGI app; the conf's hook appends each
// worker's pid to READY_FILE once the worker has loaded the app, which is
// when a gunicorn worker is ready (gunicorn's own READY=1 comes from the
// arbiter before any worker exists).
const (
	gunicornApp  = "def app(environ, start_response):\n    start_response(\"200 OK\", [(\"Content-Length\", \"3\")])\n    return [b\"ok\\n\"]\n"
	gunicornConf = "import os\n\n\ndef post_worker_init(worker):\n    with open(os.environ[\"READY_FILE\"], \"a\") as f:\n        f.write(\"%d\\n\" % os.getpid())\n"
)

// gunicornRow runs gunicorn with n sync workers from a .socket unit, as
// its documentation's unit does.
func (e *env) gunicornRow(n int) row {
	r := row{server: "gunicorn (sync workers)", workers: n, load: host.LoadAverage()}
	if _, err := os.Stat("/usr/bin/gunicorn"); err != nil {
		r.errs = append(r.errs, "gunicorn is not installed (apt-get install gunicorn)")
		return r
	}
	p, err := e.newPool("gunicorn")
	if err != nil {
		r.errs = append(r.errs, err.Error())
		return r
	}
	defer e.stopPool(p)
	appDir := filepath.Join(e.dir, p.unit)
	ready := filepath.Join(appDir, "ready")
	if err := os.MkdirAll(appDir, 0o755); err != nil {
		r.errs = append(r.errs, err.Error())
		return r
	}
	for name, body := range map[string]string{"app.py": gunicornApp, "conf.py": gunicornConf} {
		if err := os.WriteFile(filepath.Join(appDir, name), []byte(body), 0o644); err != nil {
			r.errs = append(r.errs, err.Error())
			return r
		}
	}
	svc := fmt.Sprintf("[Service]\nType=notify\nNotifyAccess=main\nKillMode=mixed\n%sEnvironment=READY_FILE=%s\nStandardOutput=append:%s\nStandardError=append:%s\nExecStart=/usr/bin/gunicorn -c %s --workers %d --chdir %s app:app\nExecReload=/bin/kill -s HUP $MAINPID\n",
		limits, ready, p.log, p.log, filepath.Join(appDir, "conf.py"), n, appDir)
	start := time.Now()
	if err := e.startPool(p, svc, &r); err != nil {
		r.errs = append(r.errs, err.Error())
		return r
	}
	pid, err := e.mgr.MainPID(e.ctx, p.service())
	if err != nil {
		r.errs = append(r.errs, err.Error())
		return r
	}
	if err := e.waitFor(10*time.Minute, fmt.Sprintf("%d gunicorn workers ready", n), func() bool { return gunicornReady(ready, pid, n) }); err != nil {
		r.errs = append(r.errs, err.Error())
		return r
	}
	r.start = time.Since(start)
	time.Sleep(settle)
	r.steady = e.measure(p, pid, &r)
	r.workersPSS = e.workersPSS(p, pid)

	// SIGHUP spawns n new workers, then stops the old ones: done when the
	// arbiter's children are n workers that all ran the hook since.
	r.reloads = append(r.reloads, e.reload(p, &r, pid, n, func() (string, error) {
		if err := os.WriteFile(ready, nil, 0o644); err != nil {
			return "-", err
		}
		return e.systemctl("reload", p.service())
	}, func() error {
		return e.waitFor(10*time.Minute, "gunicorn reload", func() bool { return gunicornReady(ready, pid, n) })
	}))
	stop := time.Now()
	if _, err := e.mgr.Systemctl(e.ctx, "stop", p.service()); err != nil {
		r.errs = append(r.errs, err.Error())
	}
	r.stop = time.Since(stop)
	return r
}

// gunicornReady is whether the arbiter has exactly n children and each has
// written its pid to the ready file.
func gunicornReady(ready string, arbiter, n int) bool {
	b, err := os.ReadFile(ready)
	if err != nil {
		return false
	}
	booted := map[int]bool{}
	for _, f := range strings.Fields(string(b)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil {
			booted[pid] = true
		}
	}
	if len(booted) < n {
		return false
	}
	children := 0
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		var pid int
		if _, err := fmt.Sscan(d.Name(), &pid); err != nil || procfs.Parent(pid) != arbiter {
			continue
		}
		if !booted[pid] {
			return false
		}
		children++
	}
	return children == n
}

func (e *env) waitFor(within time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
