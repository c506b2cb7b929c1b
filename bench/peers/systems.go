package main

import (
	"fmt"
	"path/filepath"
	"strings"
)

// system is one server under test: how its units look and how it does
// each trigger.
type system struct {
	id   string
	name string
	// path is what the load GETs; the app sleeps 50 ms there.
	path string
	// packages are the Debian packages it needs.
	packages []string
	// reload names how the system reloads; "" when it has none, and a
	// reload trigger restarts it instead.
	reload string
	// upgrade names the system's self-upgrade; "" when it has none.
	upgrade string
	// service is the body of its .service unit for one run.
	service func(e *env, r *rowRun) string
	// doUpgrade performs the self-upgrade.
	doUpgrade func(e *env, r *rowRun) (exit string, err error)
}

// systems are every server, in report order.
func systems() []*system {
	return []*system{
		{
			id: "gunicorn", name: "gunicorn", path: "/",
			packages: []string{"gunicorn"},
			reload:   "SIGHUP", upgrade: "SIGUSR2, then SIGTERM to the old master",
			service: gunicornService, doUpgrade: gunicornUpgrade,
		},
		{
			id: "puma", name: "puma", path: "/",
			packages: []string{"puma", "ruby-sd-notify"},
			reload:   "phased restart (SIGUSR1)", upgrade: "hot restart (SIGUSR2)",
			service: pumaService, doUpgrade: signalUpgrade("USR2"),
		},
		{
			id: "uwsgi", name: "uWSGI", path: "/",
			packages: []string{"uwsgi", "uwsgi-plugin-python3"},
			reload:   "chain reload", upgrade: "graceful reload (SIGHUP)",
			service: uwsgiService, doUpgrade: signalUpgrade("HUP"),
		},
		{
			id: "go", name: "Go service alone", path: "/sleep?ms=50",
			service: goService,
		},
		{
			id: "baton-gunicorn", name: "baton + gunicorn", path: "/",
			packages: []string{"gunicorn"},
			reload:   "systemctl reload", upgrade: "new binary, then reload",
			service: batonService(true), doUpgrade: batonUpgrade,
		},
		{
			id: "baton-go", name: "baton + Go", path: "/sleep?ms=50",
			reload: "systemctl reload", upgrade: "new binary, then reload",
			service: batonService(false), doUpgrade: batonUpgrade,
		},
	}
}

// common is what every service unit shares: the mode file, the log, and a
// restart after a crash (each peer's documentation has Restart=always or
// on-failure).
func common(e *env, r *rowRun) string {
	log := filepath.Join(e.dir, r.unit+".log")
	return fmt.Sprintf("Environment=APP_MODE_FILE=%s\nRestart=on-failure\nRestartSec=100ms\nStandardOutput=append:%s\nStandardError=append:%s\n",
		e.modeFile, log, log)
}

// gunicornService is the unit of gunicorn's documentation (deploy.rst):
// Type=notify, SIGHUP for reload, KillMode=mixed, TimeoutStopSec=5.
func gunicornService(e *env, r *rowRun) string {
	bind := ""
	if r.selfBound {
		bind = fmt.Sprintf(" --bind 127.0.0.1:%d", r.port)
	}
	return fmt.Sprintf("[Service]\nType=notify\nNotifyAccess=main\n%sExecStart=/usr/bin/gunicorn --workers %d%s --chdir %s --pid %s app:app\nExecReload=/bin/kill -s HUP $MAINPID\nKillMode=mixed\nTimeoutStopSec=5\n",
		common(e, r), e.opts.workers, bind, e.appDir, filepath.Join(r.dir, "gunicorn.pid"))
}

// pumaService is the unit of puma's documentation (docs/systemd.md):
// Type=notify through the sd_notify gem; SIGUSR1 is the phased restart.
// Workers have one thread each, so that every server runs 4 requests at
// a time.
func pumaService(e *env, r *rowRun) string {
	bind := "bind_to_activated_sockets 'only'"
	if r.selfBound {
		bind = fmt.Sprintf("bind 'tcp://127.0.0.1:%d'", r.port)
	}
	conf := filepath.Join(r.dir, "puma.rb")
	r.files[conf] = fmt.Sprintf("workers %d\nthreads 1, 1\n%s\nrackup '%s'\ndirectory '%s'\nenvironment 'production'\n",
		e.opts.workers, bind, filepath.Join(e.appDir, "config.ru"), e.appDir)
	return fmt.Sprintf("[Service]\nType=notify\n%sExecStart=/usr/bin/puma -C %s\nExecReload=/bin/kill -s USR1 $MAINPID\n", common(e, r), conf)
}

// uwsgiService is the unit of uWSGI's documentation (Systemd.rst):
// Type=notify, NotifyAccess=all, KillSignal=SIGQUIT (SIGTERM reloads
// uWSGI 2.0). Its chain reload needs lazy-apps, and is asked for on the
// master FIFO. uWSGI gives a socket inherited from systemd its default
// protocol, uwsgi, not that of the matching --http-socket; --protocol http
// makes that HTTP. uWSGI's http-socket closes every connection after the
// answer without saying so, which a keep-alive client cannot tell from a
// failure; "Connection: close" is the known workaround.
func uwsgiService(e *env, r *rowRun) string {
	fifo := filepath.Join(r.dir, "uwsgi.fifo")
	return fmt.Sprintf("[Service]\nType=notify\nNotifyAccess=all\nKillSignal=SIGQUIT\n%sExecStart=/usr/bin/uwsgi --plugin python3 --protocol http --http-socket 127.0.0.1:%d --listen 4096 --wsgi-file %s --callable app --master --processes %d --lazy-apps --need-app --master-fifo %s --add-header \"Connection: close\" --disable-logging\nExecReload=/bin/sh -c 'echo c > %s'\n",
		common(e, r), r.port, filepath.Join(e.appDir, "app.py"), e.opts.workers, fifo, fifo)
}

// goService runs the Go example as a plain Type=notify service, one
// process: what a Go service without a pre-fork manager looks like.
func goService(e *env, r *rowRun) string {
	addr := ""
	if r.selfBound {
		addr = fmt.Sprintf(" -addr 127.0.0.1:%d", r.port)
	}
	return fmt.Sprintf("[Service]\nType=notify\n%sExecStart=%s%s\n", common(e, r), filepath.Join(e.appDir, "hello-mode.sh"), addr)
}

// batonService runs baton as its shipped unit does (units/baton@.service:
// Type=notify, NotifyAccess=main, KillMode=mixed, ExitType=cgroup, ExecReload=baton reload
// --wait, the fd store for the sockets it binds) with 4 workers of the
// Python app under gunicorn (one arbiter with one sync worker each,
// --preload so that READY=1 comes after the app loaded) or of the Go
// example.
func batonService(gunicorn bool) func(e *env, r *rowRun) string {
	return func(e *env, r *rowRun) string {
		command := []string{filepath.Join(e.appDir, "hello-mode.sh")}
		if gunicorn {
			command = []string{"/usr/bin/gunicorn", "--preload", "--workers", "1", "--chdir", e.appDir, "app:app"}
		}
		quoted := make([]string, len(command))
		for i, c := range command {
			quoted[i] = fmt.Sprintf("%q", c)
		}
		cfg := fmt.Sprintf("command = [%s]\nworkers = %d\nsurge = 2\n", strings.Join(quoted, ", "), e.opts.workers)
		if r.selfBound {
			cfg += fmt.Sprintf("\n[sockets.web]\nlisten = \"tcp://127.0.0.1:%d\"\nbacklog = 4096\n", r.port)
		}
		path := filepath.Join(r.dir, "baton.toml")
		r.files[path] = cfg
		return fmt.Sprintf("[Service]\nType=notify\nNotifyAccess=main\nKillMode=mixed\nExitType=cgroup\nFileDescriptorStoreMax=4\nRuntimeDirectory=%s\nEnvironment=HELLO_REPORT_REQUESTS=0 BATON_REQUEST_REPORTS=off\n%sExecStart=%s run -c %s\nExecReload=%s reload --wait\n",
			r.unit, common(e, r), e.baton, path, e.baton)
	}
}
