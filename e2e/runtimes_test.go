package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testutil"
)

// The recipes of docs/workers: gunicorn, uvicorn, puma and Node run as
// baton's workers the way those pages say, with the example applications
// under examples/, under a real systemd user manager. Each test runs every
// recipe as a subtest (-run 'Runtime.*/puma' narrows to one).

// runtimeCase is one recipe.
type runtimeCase struct {
	name string
	// example is the directory under examples/ that the test deploys: it
	// is copied, so that nothing the runtime writes lands in the tree.
	example string
	// needs maps a shell check to the Debian package that satisfies it.
	needs map[string]string
	// config is baton's config file; APP stands for the deployed example,
	// NODE for node's path.
	config string
	// env is the unit's Environment= line, if any.
	env string
	// broken edits config into a release that cannot boot; its worker
	// exits with brokenStatus, after READY=1 if readyThenExits.
	broken         [2]string
	brokenStatus   int
	readyThenExits bool
	// watchdog: the recipe sends WATCHDOG=1 (config sets watchdog-timeout).
	watchdog bool
	// draining is what the runtime logs when SIGTERM reached it.
	draining string
	// dropsAccepted says why the recipe's drain loses connections it
	// accepted just before SIGTERM; such a recipe is kept out of the
	// tests under load, which it fails now and then (the docs say so).
	dropsAccepted string
}

// pythonEnv is what the Python recipes ask of the unit: print() reaches the
// log at once, and baton's SIGABRT makes faulthandler dump every thread.
const pythonEnv = "Environment=PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1\n"

var runtimes = []runtimeCase{
	{
		// The recommended gunicorn: examples/python/gunicorn.conf.py
		// (preload_app, one gunicorn worker, heartbeat forwarded as
		// WATCHDOG=1). gunicorn's timeout is short here so that an idle
		// worker checks in every 2.5s; baton's watchdog is twice it.
		name:    "gunicorn",
		example: "python",
		needs:   map[string]string{"test -x /usr/bin/gunicorn": "gunicorn", "/usr/bin/python3 -c 'import systemd.daemon'": "python3-systemd"},
		config: `command = ["/usr/bin/gunicorn", "-c", "APP/gunicorn.conf.py", "--chdir", "APP", "--timeout", "5", "app:app"]
workers = 4
surge = 2
watchdog-timeout = "10s"
`,
		env:          pythonEnv,
		broken:       [2]string{"app:app", "broken:app"},
		brokenStatus: 1,
		watchdog:     true,
		draining:     "Handling signal: term",
	},
	{
		// gunicorn as a new user first types it: no config file, so no
		// preload. gunicorn says READY=1 before its worker imports the
		// application; a release that cannot import fails after "ready",
		// which only the supervisor's settle window catches.
		name:    "gunicorn-without-preload",
		example: "python",
		needs:   map[string]string{"test -x /usr/bin/gunicorn": "gunicorn"},
		// The settle window must outlast the import, which on a loaded
		// machine takes seconds (docs/workers/gunicorn.md).
		config:         "command = [\"/usr/bin/gunicorn\", \"--workers\", \"1\", \"--chdir\", \"APP\", \"app:app\"]\nworkers = 4\nsurge = 2\nsettle-time = \"10s\"\n",
		env:            pythonEnv,
		broken:         [2]string{"app:app", "broken:app"},
		brokenStatus:   3, // gunicorn's arbiter: "Worker failed to boot."
		readyThenExits: true,
		draining:       "Handling signal: term",
	},
	{
		// uvicorn through examples/python/uvicorn_baton.py, which fixes
		// its drain; READY=1 and the pings come from the application's
		// lifespan handler (examples/python/asgi.py).
		name:    "uvicorn",
		example: "python",
		needs:   map[string]string{"/usr/bin/python3 -c 'import uvicorn'": "python3-uvicorn", "/usr/bin/python3 -c 'import systemd.daemon'": "python3-systemd"},
		config: `command = ["/usr/bin/python3", "APP/uvicorn_baton.py", "--app-dir", "APP", "asgi:app"]
workers = 4
surge = 2
watchdog-timeout = "5s"
`,
		env:          pythonEnv,
		broken:       [2]string{"asgi:app", "broken:app"},
		brokenStatus: 1,
		watchdog:     true,
		draining:     "Draining: stopped accepting",
	},
	{
		// uvicorn's own command line: it serves, becomes ready and fails
		// a broken deploy like the rest, but its drain closes connections
		// that have not sent their request yet.
		name:    "uvicorn-cli",
		example: "python",
		needs:   map[string]string{"/usr/bin/python3 -c 'import uvicorn'": "python3-uvicorn", "/usr/bin/python3 -c 'import systemd.daemon'": "python3-systemd"},
		config: `command = ["/usr/bin/python3", "-m", "uvicorn", "--fd", "3", "--lifespan", "on", "--app-dir", "APP", "asgi:app"]
workers = 4
surge = 2
watchdog-timeout = "5s"
`,
		env:           pythonEnv,
		broken:        [2]string{"asgi:app", "broken:app"},
		brokenStatus:  1,
		watchdog:      true,
		draining:      "Shutting down",
		dropsAccepted: "uvicorn's shutdown closes every connection without a request in progress, also one accepted just before whose request is on its way",
	},
	{
		name:    "puma",
		example: "ruby",
		needs:   map[string]string{"test -x /usr/bin/puma": "puma", "/usr/bin/ruby -e 'require \"sd_notify\"'": "ruby-sd-notify"},
		config: `command = ["/usr/bin/puma", "-C", "APP/puma.rb", "APP/config.ru"]
workers = 4
surge = 2
watchdog-timeout = "5s"
`,
		broken:       [2]string{"config.ru", "broken.ru"},
		brokenStatus: 1,
		watchdog:     true,
		draining:     "Gracefully stopping",
	},
	{
		name:    "node",
		example: "node",
		needs:   map[string]string{"command -v node": "nodejs", "command -v systemd-notify": "systemd"},
		config: `command = ["NODE", "APP/server.js"]
workers = 4
surge = 2
watchdog-timeout = "5s"
`,
		broken:       [2]string{"server.js", "broken.js"},
		brokenStatus: 1,
		watchdog:     true,
		draining:     "SIGTERM: draining",
	},
}

// checkNeeds fails (never skips: CI installs these) when a package the
// recipe needs is missing.
func (rt runtimeCase) checkNeeds(t *testing.T) {
	t.Helper()
	for check, pkg := range rt.needs {
		if out, err := exec.Command("/bin/sh", "-c", check).CombinedOutput(); err != nil {
			t.Fatalf("the %s recipe needs the Debian package %s (.ci/run installs it): %s: %v %s", rt.name, pkg, check, err, out)
		}
	}
}

// deploy copies examples/DIR to a fresh directory the services can read.
func deploy(t *testing.T, example, name string) string {
	t.Helper()
	src := filepath.Join("..", "examples", example)
	dst := filepath.Join(workDir, name+"-app")
	if err := os.RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dst) })
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue // __pycache__ and the like
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// startRuntime deploys the recipe's example and starts it under baton from
// a .socket unit, with ExecReload= through baton reload --wait, as
// docs/workers shows.
func startRuntime(t *testing.T, rt runtimeCase, name string) *reloadService {
	t.Helper()
	return startRuntimeWith(t, rt, name, "")
}

// startRuntimeWith is startRuntime with more lines in [Service].
func startRuntimeWith(t *testing.T, rt runtimeCase, name, service string) *reloadService {
	t.Helper()
	rt.checkNeeds(t)
	app := deploy(t, rt.example, name)
	node, _ := exec.LookPath("node")
	config := strings.NewReplacer("APP", app, "NODE", node).Replace(rt.config)
	r := &reloadService{config: filepath.Join(workDir, name+".toml"), port: freePort(t)}
	if err := os.WriteFile(r.config, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	r.service = newService(t, name,
		fmt.Sprintf("Type=notify\nNotifyAccess=main\nKillMode=mixed\nRuntimeDirectory=%s\nExecStart=%s run -c %s\nExecReload=%s reload --wait\n%s%s", name, batonBin, r.config, batonBin, rt.env, service),
		fmt.Sprintf("ListenStream=127.0.0.1:%d\nFileDescriptorName=web\n", r.port))
	r.systemctl("start", name+".socket", name+".service")
	return r
}

// breakDeploy rewrites the config into the recipe's release that cannot
// boot.
func (r *reloadService) breakDeploy(t *testing.T, rt runtimeCase) {
	t.Helper()
	b, err := os.ReadFile(r.config)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), rt.broken[0]) {
		t.Fatalf("config lacks %q:\n%s", rt.broken[0], b)
	}
	if err := os.WriteFile(r.config, []byte(strings.Replace(string(b), rt.broken[0], rt.broken[1], 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

var helloRE = regexp.MustCompile(`^hello from worker ([0-9]+) generation ([0-9]+) pid ([0-9]+)\n$`)

type hello struct{ slot, gen, pid string }

func (r *reloadService) hello(t *testing.T) hello {
	t.Helper()
	code, body := get(t, r.url("/"))
	m := helloRE.FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("GET / = %d %q", code, body)
	}
	return hello{slot: m[1], gen: m[2], pid: m[3]}
}

// everyWorker asks until all four slots and four distinct pids answered
// (new connections spread over the workers unevenly, so it may take many).
func (r *reloadService) everyWorker(t *testing.T, gen string) map[string]bool {
	t.Helper()
	slots, pids := map[string]bool{}, map[string]bool{}
	for i := 0; i < 2000 && (len(slots) < 4 || len(pids) < 4); i++ {
		h := r.hello(t)
		if h.gen != gen {
			t.Fatalf("generation %s answered, want %s", h.gen, gen)
		}
		slots[h.slot], pids[h.pid] = true, true
	}
	if len(slots) != 4 || len(pids) != 4 {
		t.Fatalf("answered by slots %v and pids %v, want four of each", slots, pids)
	}
	return pids
}

// noEscalations: no clock fired on a worker that was healthy throughout.
func (r *reloadService) noEscalations(t *testing.T) {
	t.Helper()
	if log := r.readLog(); strings.Contains(log, "-timeout") && strings.Contains(log, "expired") {
		t.Errorf("a worker was escalated:\n%s", log)
	}
}

type runtimeStatus struct {
	Pool []struct {
		PID       int      `json:"pid"`
		State     string   `json:"state"`
		Heartbeat *float64 `json:"heartbeat_age_seconds"`
	} `json:"pool"`
}

func (r *reloadService) status(t *testing.T) runtimeStatus {
	t.Helper()
	out, err := exec.Command(batonBin, "status", "--json", "--control", filepath.Join(mgr.RuntimeDir, r.name, "control.sock")).Output()
	if err != nil {
		t.Fatalf("baton status: %v", err)
	}
	var st runtimeStatus
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return st
}

// waitHeartbeats waits until every ready worker's last WATCHDOG=1 moved on
// from where it was first seen (readiness also sets it, so one reading
// says nothing).
func (r *reloadService) waitHeartbeats(t *testing.T) {
	t.Helper()
	first := map[int]time.Time{}
	pinged := map[int]bool{}
	r.waitFor("WATCHDOG=1 from every worker", 30*time.Second, func() bool {
		now := time.Now()
		for _, w := range r.status(t).Pool {
			if w.State != "ready" || w.Heartbeat == nil {
				continue
			}
			at := now.Add(-time.Duration(*w.Heartbeat * float64(time.Second)))
			if f, ok := first[w.PID]; !ok {
				first[w.PID] = at
			} else if at.Sub(f) > 500*time.Millisecond {
				pinged[w.PID] = true
			}
		}
		return len(pinged) >= 4
	})
}

// Four workers serve from one socket unit on 127.0.0.1, each answering
// from its own process, and those that send watchdog pings do.
func TestRuntimeServes(t *testing.T) {
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			r := startRuntime(t, rt, "rt-serve-"+rt.name)
			if st := r.show("StatusText"); st != "4/4 workers ready, generation 1" {
				t.Errorf("status %q", st)
			}
			pids := r.everyWorker(t, "1")
			// After the answers: gunicorn forks the process that serves
			// only after it said READY=1.
			procs, err := mgr.UnitProcs(ctx(t), r.name+".service")
			if err != nil {
				t.Fatal(err)
			}
			inUnit := map[string]bool{}
			for _, p := range procs {
				inUnit[strconv.Itoa(p)] = true
			}
			main := r.show("MainPID")
			for pid := range pids {
				if pid == main || !inUnit[pid] {
					t.Errorf("pid %s answered: baton's own (%s), or not in the unit (%v)", pid, main, procs)
				}
			}
			if rt.watchdog {
				r.waitHeartbeats(t)
			}
			r.noEscalations(t)
		})
	}
}

// Two reloads under load from a client that never retries: no request
// fails, and afterwards only the newest generation answers.
func TestRuntimeReloadUnderLoad(t *testing.T) {
	for _, rt := range runtimes {
		if rt.dropsAccepted != "" {
			continue
		}
		t.Run(rt.name, func(t *testing.T) {
			r := startRuntime(t, rt, "rt-reload-"+rt.name)
			before := r.everyWorker(t, "1")
			l := startLoad(t, r.url("/sleep?ms=20"), 8)
			for gen := 2; gen <= 3; gen++ {
				l.waitServed(100)
				r.systemctl("reload", r.name+".service")
				if st := r.show("StatusText"); st != fmt.Sprintf("4/4 workers ready, generation %d", gen) {
					t.Errorf("after reload to generation %d: %q", gen, st)
				}
			}
			l.waitServed(100)
			t.Logf("during two reloads: %s", l.finish().Summary())
			// A reload is done when the old workers were told to stop; they
			// may still be draining (and accepting, until they notice).
			r.waitFor("generation 2 to exit", 30*time.Second, func() bool {
				return strings.Count(r.readLog(), "(replaced by generation 3)") == 4
			})
			for pid := range r.everyWorker(t, "3") {
				if before[pid] {
					t.Errorf("pid %s of generation 1 answers as generation 3", pid)
				}
			}
			r.noEscalations(t)
		})
	}
}

// A release that cannot boot (its code fails to import): systemctl reload
// fails naming the worker's exit status, and generation 1 goes on serving
// without a failed request.
func TestRuntimeBrokenDeploy(t *testing.T) {
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			r := startRuntime(t, rt, "rt-broken-"+rt.name)
			before := r.everyWorker(t, "1")
			l := startLoad(t, r.url("/"), 4)
			l.waitServed(50)
			r.breakDeploy(t, rt)
			out, err := mgr.Systemctl(ctx(t), "reload", r.name+".service")
			if err == nil {
				t.Errorf("systemctl reload succeeded for a release that cannot boot: %s", out)
				l.finish()
				t.FailNow()
			}
			l.waitServed(50)
			l.finish()
			want := regexp.MustCompile(fmt.Sprintf(`reload to generation 2 failed: .*exited with status %d\b`, rt.brokenStatus))
			if log := r.readLog(); !want.MatchString(log) {
				t.Errorf("the log does not say why the reload failed (%s):\n%s", want, log)
			}
			if st := r.show("StatusText"); !strings.HasPrefix(st, "4/4 workers ready, generation ") || !strings.Contains(st, "last reload failed") {
				t.Errorf("status %q", st)
			}
			for i := 0; i < 50; i++ {
				h := r.hello(t)
				// A worker that failed before READY=1 touched no old
				// worker; one that failed after it may have replaced some,
				// which the rollback replaced in turn.
				if !rt.readyThenExits && (h.gen != "1" || !before[h.pid]) {
					t.Fatalf("after the failed reload, pid %s of generation %s answered; generation 1 was %v", h.pid, h.gen, before)
				}
			}
			if st := r.show("ActiveState"); st != "active" {
				t.Errorf("state %s", st)
			}
		})
	}
}

// systemctl stop under load: every request a worker began to answer
// finishes whole, and no process of the service is left.
func TestRuntimeStopUnderLoad(t *testing.T) {
	for _, rt := range runtimes {
		if rt.dropsAccepted != "" {
			continue
		}
		t.Run(rt.name, func(t *testing.T) {
			r := startRuntime(t, rt, "rt-stop-"+rt.name)
			l := startFlushedLoad(fmt.Sprintf("127.0.0.1:%d", r.port), "/sleep?ms=300&flush=1", 8)
			l.waitDone(t, 20)
			stopAt := time.Now()
			// The service first, then the socket: connections still queued
			// when the socket closes were never accepted by a worker.
			_, err := mgr.Systemctl(ctx(t), "stop", r.name+".service", r.name+".socket")
			res := l.finish()
			if err != nil {
				t.Fatal(err)
			}
			drained, unaccepted := 0, 0
			kinds := map[string]int{}
			for _, x := range res {
				switch {
				case x.headers.IsZero():
					unaccepted++
					kinds[fmt.Sprintf("%s after the stop began: %v", x.start.Sub(stopAt).Round(100*time.Millisecond), x.err)]++
					if x.start.Before(stopAt.Add(-5 * time.Second)) {
						t.Errorf("a request made %s before the stop was never answered: %v", stopAt.Sub(x.start), x.err)
					}
				case x.err != nil:
					t.Errorf("a request whose answer began %s after the stop began failed: %v", x.headers.Sub(stopAt), x.err)
				case x.end.After(stopAt):
					drained++
				}
			}
			t.Logf("%d requests, %d finished during the drain, %d never reached a worker: %v", len(res), drained, unaccepted, kinds)
			if drained == 0 {
				t.Errorf("no request finished during the drain: the test proved nothing")
			}
			if st, result := r.show("ActiveState"), r.show("Result"); st != "inactive" || result != "success" {
				t.Errorf("after stop: %s, result %s", st, result)
			}
			if procs, _ := mgr.UnitProcs(ctx(t), r.name+".service"); len(procs) > 0 {
				t.Errorf("processes %v outlive the stop", procs)
			}
			if log := r.readLog(); !strings.Contains(log, "all workers stopped") {
				t.Errorf("log:\n%s", log)
			}
		})
	}
}

// kill -9 of baton under ExitType=cgroup, as the shipped unit has it: each
// runtime's workers take their parent-death SIGTERM (more than once, at
// times) as a drain, survive writing to the output pipe nobody reads any
// more, and finish the requests they hold; systemd restarts baton once
// they are gone. A client that never retries sees no failure.
func TestRuntimeKilledBaton(t *testing.T) {
	for _, rt := range runtimes {
		if rt.dropsAccepted != "" {
			continue
		}
		t.Run(rt.name, func(t *testing.T) {
			r := startRuntimeWith(t, rt, "rt-kill-"+rt.name, "ExitType=cgroup\nRestart=on-failure\nRestartSec=100ms\n")
			ready := func() bool { return strings.HasPrefix(r.show("StatusText"), "4/4 workers ready") }
			r.waitFor("4 workers ready", 60*time.Second, ready)
			l := startLoad(t, r.url("/sleep?ms=300"), 8)
			l.waitServed(20)
			killed := killBaton(t, r.service, ready)
			l.waitServed(20)
			finishedAcrossKill(t, l, killed)
		})
	}
}

// flushedLoad sends requests whose answers begin at once (flush=1), each on
// a fresh connection written by hand: the first bytes of the answer show
// that a worker holds the request, so a failure before them is a
// connection no worker accepted, and one after them a dropped request.
type flushedLoad struct {
	mu   sync.Mutex
	res  []flushedResult
	done atomic.Int64
	stop chan struct{}
	wg   sync.WaitGroup
}

type flushedResult struct {
	start, headers, end time.Time
	err                 error
}

func startFlushedLoad(addr, path string, clients int) *flushedLoad {
	l := &flushedLoad{stop: make(chan struct{})}
	for i := 0; i < clients; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			// Staggered, so that some request is always halfway when the
			// stop begins rather than all starting together.
			time.Sleep(time.Duration(i) * 40 * time.Millisecond)
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				x := flushedGet(addr, path)
				l.mu.Lock()
				l.res = append(l.res, x)
				l.mu.Unlock()
				if x.err == nil {
					l.done.Add(1)
				} else if errors.Is(x.err, errRefused) {
					return // the socket is gone
				}
			}
		}()
	}
	return l
}

var errRefused = errors.New("connection refused")

func flushedGet(addr, path string) flushedResult {
	x := flushedResult{start: time.Now()}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		x.err = fmt.Errorf("%w: %v", errRefused, err)
		return x
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path); err != nil {
		x.err = err
		return x
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		x.err = err
		return x
	}
	x.headers = time.Now()
	body, err := io.ReadAll(resp.Body)
	x.end = time.Now()
	switch {
	case err != nil:
		x.err = fmt.Errorf("body after %q: %w", body, err)
	case resp.StatusCode != 200 || !strings.Contains(string(body), "slept "):
		x.err = fmt.Errorf("%d %q", resp.StatusCode, body)
	}
	return x
}

func (l *flushedLoad) waitDone(t *testing.T, n int64) {
	t.Helper()
	if !testutil.Eventually(t, 60*time.Second, func() bool { return l.done.Load() >= n }) {
		t.Fatalf("only %d requests done in 60s", l.done.Load())
	}
}

func (l *flushedLoad) finish() []flushedResult {
	close(l.stop)
	l.wg.Wait()
	return l.res
}

// A client that connected before the stop but sends its request only once
// the worker is draining (a slow client, or one whose request is simply
// still on its way) is answered: the worker accepted it, and no other
// worker can serve it now.
func TestRuntimeDrainAnswersLateRequest(t *testing.T) {
	for _, rt := range runtimes {
		if rt.dropsAccepted != "" {
			continue
		}
		t.Run(rt.name, func(t *testing.T) {
			rt.config = strings.Replace(rt.config, "workers = 4", "workers = 1", 1)
			r := startRuntime(t, rt, "rt-late-"+rt.name)
			r.hello(t)
			conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// The handshake completed before Dial returned: an empty accept
			// queue now means the only worker took the connection.
			r.waitFor("the worker to accept the connection", 10*time.Second, func() bool { return acceptQueue(t, r.port) == 0 })
			stopped := make(chan error, 1)
			go func() {
				_, err := mgr.Systemctl(ctx(t), "stop", r.name+".service", r.name+".socket")
				stopped <- err
			}()
			r.waitFor("the worker to begin draining", 30*time.Second, func() bool { return strings.Contains(r.readLog(), rt.draining) })
			// The slow client: its request arrives well after the drain began.
			time.Sleep(500 * time.Millisecond)
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("the request sent during the drain was dropped: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 200 || !helloRE.Match(body) {
				t.Errorf("the request sent during the drain: %d %q %v", resp.StatusCode, body, err)
			}
			select {
			case err := <-stopped:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("systemctl stop did not return")
			}
		})
	}
}

// acceptQueue is the number of connections waiting in the accept queue of
// the listening socket on 127.0.0.1:port (rx_queue of a listener in
// /proc/net/tcp).
func acceptQueue(t *testing.T, port int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf("0100007F:%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 5 || f[1] != local || f[3] != "0A" {
			continue
		}
		_, rx, _ := strings.Cut(f[4], ":")
		n, err := strconv.ParseInt(rx, 16, 64)
		if err != nil {
			t.Fatalf("/proc/net/tcp: %q", line)
		}
		return int(n)
	}
	t.Fatalf("no listener on 127.0.0.1:%d in /proc/net/tcp", port)
	return 0
}
