package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/internal/testutil"
	"golang.org/x/sys/unix"
)

// These tests run baton as a container runtime would: PID 1 of its own PID
// namespace (unshare --pid --fork --mount-proc), no systemd, settings from
// flags and the environment, the orchestrator's view through /livez and
// /readyz on the metrics socket.

// pid1 is one baton running as PID 1 of a fresh PID namespace.
type pid1 struct {
	t       *testing.T
	cmd     *exec.Cmd // unshare
	pid     int       // baton, as seen from here
	log     *lockedBuffer
	done    chan struct{}
	status  syscall.WaitStatus
	metrics string // http://127.0.0.1:PORT
	web     string
}

// startPID1 starts baton run ARGS as PID 1 with a web socket and a metrics
// socket on fresh ports, and env added to a minimal environment.
func startPID1(t *testing.T, env []string, args ...string) *pid1 {
	t.Helper()
	web, mport := freePort(t), freePort(t)
	p := &pid1{t: t, log: &lockedBuffer{}, done: make(chan struct{}),
		web: fmt.Sprintf("http://127.0.0.1:%d", web), metrics: fmt.Sprintf("http://127.0.0.1:%d", mport)}
	argv := append([]string{"--pid", "--fork", "--mount-proc", "--kill-child", "--", batonBin, "run",
		"-b", fmt.Sprintf("web=tcp://127.0.0.1:%d", web), "-b", fmt.Sprintf("metrics=tcp://127.0.0.1:%d", mport), "--metrics-socket", "metrics"}, args...)
	p.cmd = exec.Command("unshare", argv...)
	p.cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.status = p.cmd.ProcessState.Sys().(syscall.WaitStatus)
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			// baton is the namespace's init: killing it kills everything
			// in the namespace.
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			if p.pid > 0 {
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
			}
			<-p.done
		}
		if t.Failed() {
			t.Logf("baton's output:\n%s", p.log.String())
		}
	})
	if !testutil.Eventually(t, 10*time.Second, func() bool {
		for _, c := range testutil.Children(p.cmd.Process.Pid) {
			if nsPID(c) == 1 {
				p.pid = c
				return true
			}
		}
		return p.exited()
	}) || (p.pid == 0 && !p.exited()) {
		t.Fatalf("no PID 1 under unshare (pid %d)\n%s", p.cmd.Process.Pid, p.log.String())
	}
	return p
}

func (p *pid1) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to baton from outside its namespace.
func (p *pid1) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := syscall.Kill(p.pid, sig); err != nil {
		p.t.Fatal(err)
	}
}

// wait waits for baton to exit and returns its exit status (unshare
// passes it on).
func (p *pid1) wait(within time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("baton did not exit within %s\n%s", within, p.log.String())
	}
	if p.status.Signaled() {
		p.t.Fatalf("baton was killed by %s\n%s", p.status.Signal(), p.log.String())
	}
	return p.status.ExitStatus()
}

// probe GETs path on the metrics socket over a fresh connection.
func (p *pid1) probe(path string) (int, string) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(p.metrics + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *pid1) waitReady() {
	p.t.Helper()
	if !testutil.Eventually(p.t, 30*time.Second, func() bool { code, _ := p.probe("/readyz"); return code == http.StatusOK || p.exited() }) || p.exited() {
		_, body := p.probe("/readyz")
		p.t.Fatalf("/readyz never answered 200 (last: %q)\n%s", body, p.log.String())
	}
}

// zombies lists the zombies in baton's namespace, read from the
// namespace's own /proc (the one --mount-proc mounted), as "pid ppid comm".
func (p *pid1) zombies() []string {
	root := fmt.Sprintf("/proc/%d/root/proc", p.pid)
	ents, _ := os.ReadDir(root)
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(root, e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 && f[0] == "Z" {
			comm := string(stat[bytes.IndexByte(stat, '(')+1 : i])
			out = append(out, e.Name()+" ppid "+f[1]+" "+comm)
		}
	}
	return out
}

// nsPID is pid's pid in its innermost namespace, from NSpid in
// /proc/PID/status; 0 when unknown.
func nsPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0
			}
			n, _ := strconv.Atoi(f[len(f)-1])
			return n
		}
	}
	return 0
}

// monotonic is CLOCK_MONOTONIC in nanoseconds: one clock for this test and
// the workers it runs, whatever process reads it.
func monotonic() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

// lockedBuffer collects a process's output for the test to read while it
// runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// workerEnv makes the e2e binary itself the worker (see pid1worker_test.go).
func workerEnv(dir string, orphans int) []string {
	return []string{pid1WorkerEnv + "=" + dir, pid1OrphansEnv + "=" + strconv.Itoa(orphans)}
}

func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func TestPID1ReapsOrphansOfWorkers(t *testing.T) {
	dir := t.TempDir()
	const orphans = 3
	p := startPID1(t, workerEnv(dir, orphans), "-w", "2", "--", testBinary(t))
	p.waitReady()
	// Each worker double-forks orphans that exit at once: their parent is
	// gone, so the kernel hands them to the namespace's init, baton.
	if !testutil.Eventually(t, 20*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "orphan.*"))
		return len(m) >= 2*orphans
	}) {
		m, _ := filepath.Glob(filepath.Join(dir, "orphan.*"))
		t.Fatalf("%d of %d orphans ran", len(m), 2*orphans)
	}
	// Every one of them is reaped: no zombie stays in the namespace.
	var left []string
	if !testutil.Eventually(t, 10*time.Second, func() bool { left = p.zombies(); return len(left) == 0 }) {
		t.Errorf("zombies left in baton's namespace (PID 1 must reap every orphan): %v", left)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(60 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

func TestPID1DrainsOnSIGTERMBeforeStoppingWorkers(t *testing.T) {
	for _, keepAlive := range []bool{false, true} {
		t.Run(fmt.Sprintf("keepalive=%v", keepAlive), func(t *testing.T) { drainOnSIGTERM(t, keepAlive) })
	}
}

// drainOnSIGTERM is a pod deletion: SIGTERM, baton turns unready at once
// (the orchestrator stops routing to it within drain-delay), keeps serving
// what still comes, then stops its workers. No request fails, and /readyz
// said 503 before the first worker got SIGTERM.
func drainOnSIGTERM(t *testing.T, keepAlive bool) {
	dir := t.TempDir()
	const drainDelay = 5 * time.Second
	p := startPID1(t, append(workerEnv(dir, 0), "BATON_DRAIN_DELAY="+drainDelay.String(), "BATON_GRACEFUL_TIMEOUT=20s"),
		"-w", "2", "--", testBinary(t))
	p.waitReady()

	l, err := load.Start(context.Background(), load.Options{URL: p.web + "/", Clients: 4, KeepAlive: keepAlive, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	run := &loadRun{Load: l, t: t}
	run.waitServed(200)

	// The poller stands for the kubelet: it records when /readyz first
	// said 503, on the clock the workers use for SIGTERM.
	var unreadyAt, unreadyNow atomic.Int64
	var unreadyBody string
	pollDone := make(chan struct{})
	stopPoll := make(chan struct{})
	go func() {
		defer close(pollDone)
		for {
			select {
			case <-stopPoll:
				return
			default:
			}
			code, body := p.probe("/readyz")
			if code == http.StatusServiceUnavailable {
				unreadyBody = body
				unreadyAt.Store(monotonic())
				unreadyNow.Store(time.Now().UnixNano())
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	p.signal(syscall.SIGTERM)
	if !testutil.Eventually(t, 10*time.Second, func() bool { return unreadyAt.Load() != 0 }) {
		close(stopPoll)
		<-pollDone
		t.Fatalf("/readyz never said 503 after SIGTERM")
	}
	<-pollDone
	if !strings.HasPrefix(unreadyBody, "not ready") {
		t.Errorf("/readyz body %q", unreadyBody)
	}
	var body string
	if !testutil.Eventually(t, 2*time.Second, func() bool { _, body = p.probe("/readyz"); return strings.HasPrefix(body, "not ready: draining") }) {
		t.Errorf("/readyz body %q does not say baton is draining", body)
	}
	// Alive while draining: liveness must not restart a draining pod.
	if code, body := p.probe("/livez"); code != http.StatusOK {
		t.Errorf("/livez during the drain: %d %q", code, body)
	}
	// Requests that still arrive (the orchestrator has not caught up yet)
	// are served, then the load stops as a removed endpoint would.
	run.waitServed(100)
	if terms, _ := filepath.Glob(filepath.Join(dir, "term.*")); len(terms) > 0 {
		t.Fatalf("a worker got SIGTERM within drain-delay %s: %v", drainDelay, terms)
	}
	res := run.finish()
	after := 0
	for _, r := range res.Records {
		if r.Kind == load.OK && r.Start.UnixNano() > unreadyNow.Load() {
			after++
		}
	}
	if after == 0 {
		t.Errorf("no request was served after /readyz said 503: the drain window was not exercised")
	}

	if code := p.wait(60 * time.Second); code != 0 {
		t.Errorf("exit status %d after a graceful stop, want 0", code)
	}
	// The order: unready first, then SIGTERM to each worker.
	terms, _ := filepath.Glob(filepath.Join(dir, "term.*"))
	if len(terms) != 2 {
		t.Fatalf("%d workers recorded SIGTERM, want 2: %v", len(terms), terms)
	}
	for _, f := range terms {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		at, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if at <= unreadyAt.Load() {
			t.Errorf("%s got SIGTERM at %d, before /readyz said 503 at %d (CLOCK_MONOTONIC ns)", filepath.Base(f), at, unreadyAt.Load())
		}
	}
}

func TestPID1HandlesEverySignalItDocuments(t *testing.T) {
	p := startPID1(t, nil, "-w", "2", "--", helloBin)
	p.waitReady()
	// A scrape in flight while baton executes itself in place loses its
	// connection (the listening socket survives, accepted ones do not), as
	// one probe of a kubelet's would: a failed scrape reads as -1.
	metric := func(name string) float64 {
		fams, err := tryScrape(p.metrics + "/metrics")
		if err != nil {
			return -1
		}
		v, _ := value(fams, name, "", "")
		return v
	}
	gen := func() float64 { return metric("baton_generation") }
	wanted := func() float64 { return metric("baton_workers_wanted") }
	waitMetric := func(what string, f func() float64, want float64) {
		t.Helper()
		if !testutil.Eventually(t, 30*time.Second, func() bool { return f() == want }) {
			t.Fatalf("%s: %v, want %v\n%s", what, f(), want, p.log.String())
		}
	}

	// From inside the namespace, as kubectl exec ... kill -HUP 1 would.
	if out, err := exec.Command("nsenter", "--target", strconv.Itoa(p.pid), "--pid", "--mount", "--", "kill", "-HUP", "1").CombinedOutput(); err != nil {
		t.Fatalf("kill -HUP 1 inside the namespace: %v %s", err, out)
	}
	waitMetric("generation after SIGHUP", gen, 2)
	// A stray SIGUSR1 (a log-reopen habit of other managers) ends nothing.
	p.signal(syscall.SIGUSR1)
	if !testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(p.log.String(), "SIGUSR1: ignored") }) {
		t.Errorf("SIGUSR1 not logged:\n%s", p.log.String())
	}
	p.signal(syscall.SIGTTIN)
	waitMetric("workers after SIGTTIN", wanted, 3)
	p.signal(syscall.SIGTTOU)
	waitMetric("workers after SIGTTOU", wanted, 2)
	p.waitReady()
	// An upgrade in place keeps PID 1 and rolls the workers.
	p.signal(syscall.SIGUSR2)
	waitMetric("generation after SIGUSR2", gen, 3)
	if !strings.Contains(p.log.String(), "upgraded in place") || nsPID(p.pid) != 1 {
		t.Errorf("no upgrade in place as PID 1 (pid %d is %d in its namespace)", p.pid, nsPID(p.pid))
	}
	p.waitReady()
	p.signal(syscall.SIGINT)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGINT (fast stop), want 0", code)
	}

	q := startPID1(t, nil, "-w", "1", "--", helloBin)
	q.waitReady()
	q.signal(syscall.SIGQUIT)
	if code := q.wait(30 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGQUIT (fast stop), want 0", code)
	}
}

func TestPID1ExitStatusSaysWhy(t *testing.T) {
	// Workers that never become ready: baton gives up, 3.
	p := startPID1(t, nil, "-w", "1", "--", "/bin/false")
	if code := p.wait(60 * time.Second); code != 3 {
		t.Errorf("exit status %d when no worker ever became ready, want 3", code)
	}
	// A bad setting: nothing starts, 2, and the error names the variable.
	q := startPID1(t, []string{"BATON_WORKERS=many"}, "--", helloBin)
	if code := q.wait(30 * time.Second); code != 2 || !strings.Contains(q.log.String(), `BATON_WORKERS: "many" is not a number`) {
		t.Errorf("exit status %d (want 2), output %q", code, q.log.String())
	}
}
