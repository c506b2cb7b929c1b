package workers

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/sdnotify"
	"github.com/batonhq/baton/internal/testutil"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// recorder is a fake systemd on the upward side.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Send(state string, fds ...int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, state)
	return nil
}

func (r *recorder) has(sub string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// lastStatus is the last STATUS= sent, without its key.
func (r *recorder) lastStatus() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.msgs) - 1; i >= 0; i-- {
		for _, l := range strings.Split(r.msgs[i], "\n") {
			if st, ok := strings.CutPrefix(l, "STATUS="); ok {
				return st
			}
		}
	}
	return ""
}

type pool struct {
	t      *testing.T
	s      *Supervisor
	up     *recorder
	hook   *logtest.Hook
	runErr chan error
}

func (p *pool) logged(sub string) bool {
	for _, e := range p.hook.AllEntries() {
		if strings.Contains(e.Message, sub) {
			return true
		}
	}
	return false
}

func (p *pool) logLines() string {
	var b strings.Builder
	for _, e := range p.hook.AllEntries() {
		b.WriteString(e.Level.String() + " " + e.Message + "\n")
	}
	return b.String()
}

func (p *pool) waitFor(what string, within time.Duration, cond func(Snapshot) bool) Snapshot {
	p.t.Helper()
	var snap Snapshot
	if !testutil.Eventually(p.t, within, func() bool {
		var ok bool
		snap, ok = p.s.Snapshot()
		return ok && cond(snap)
	}) {
		p.t.Fatalf("timed out waiting for %s; last snapshot %+v\nlog:\n%s", what, snap, p.logLines())
	}
	return snap
}

func (p *pool) stop(mode StopMode) {
	p.t.Helper()
	p.s.Stop(mode)
	select {
	case err := <-p.runErr:
		if err != nil {
			p.t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		p.t.Fatalf("Run did not return after Stop\nlog:\n%s", p.logLines())
	}
}

// startPool runs a supervisor over the test binary as worker.
func startPool(t *testing.T, cfg *config.Config, sockets activation.Set, env ...string) *pool {
	t.Helper()
	return startPoolWith(t, cfg, sockets, func(*Options) {}, env...)
}

func startPoolWith(t *testing.T, cfg *config.Config, sockets activation.Set, opt func(*Options), env ...string) *pool {
	t.Helper()
	testutil.CheckFDLeaks(t)
	testutil.CheckChildLeaks(t)
	if cfg.Command == nil {
		cfg.Command = []string{os.Args[0]}
	}
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	up := &recorder{}
	o := Options{
		Config: cfg, Sockets: sockets, RuntimeDir: t.TempDir(), Shim: os.Args[0],
		Env: append(os.Environ(), env...), Upward: up, Log: log,
	}
	opt(&o)
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	p := &pool{t: t, s: s, up: up, hook: hook, runErr: make(chan error, 1)}
	go func() { p.runErr <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			p.stop(Fast)
		}
	})
	return p
}

func bindLocal(t *testing.T, names ...string) activation.Set {
	t.Helper()
	var set activation.Set
	for _, n := range names {
		a, _ := config.ParseAddress("127.0.0.1:0")
		s, err := activation.Bind(config.Socket{Name: n, Address: a, Backlog: 64})
		if err != nil {
			t.Fatal(err)
		}
		set = append(set, s)
	}
	t.Cleanup(func() { set.Close() })
	return set
}

func TestWorkersGetSocketsAndEnvironmentAsFromSystemd(t *testing.T) {
	out := t.TempDir()
	sockets := bindLocal(t, "web", "metrics")
	p := startPool(t, &config.Config{Workers: 2, Environment: []string{"APP_MODE=test", "HOME=/srv/app"}}, sockets,
		"BATON_TEST_MODE=report", "BATON_TEST_OUT="+out, "HOME=/root",
		// baton's own protocol variables must not leak to workers.
		"LISTEN_FDS=9", "LISTEN_PID=1", "WATCHDOG_USEC=5", "NOTIFY_SOCKET=/run/systemd/notify", "BATON_WORKER=99")
	p.waitFor("2 ready workers", 20*time.Second, func(s Snapshot) bool { return s.Ready == 2 })
	if !p.up.has("READY=1") || !p.up.has("STATUS=2/2 workers ready, generation 1") {
		t.Errorf("upward messages %v", p.up.msgs)
	}
	pids := map[string]bool{}
	for _, slot := range []string{"1", "2"} {
		b, err := os.ReadFile(filepath.Join(out, slot+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var r map[string]any
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		env := envMap(r["env"].([]any))
		pid := strconv.Itoa(int(r["pid"].(float64)))
		pids[pid] = true
		want := map[string]string{
			"LISTEN_PID": pid, "LISTEN_FDS": "2", "LISTEN_FDNAMES": "web:metrics",
			"BATON_WORKER": slot, "BATON_GENERATION": "1", "NOTIFY_SOCKET": p.s.NotifySocket(),
			"APP_MODE": "test", "HOME": "/srv/app",
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("worker %s: %s=%q, want %q", slot, k, env[k], v)
			}
		}
		for _, k := range []string{"WATCHDOG_USEC", "WATCHDOG_PID", execFDEnv} {
			if v, ok := env[k]; ok {
				t.Errorf("worker %s: %s=%q leaked", slot, k, v)
			}
		}
		if r["fd3"] != true || r["fd4"] != true {
			t.Errorf("worker %s: fds 3 and 4 are not sockets: %v", slot, r["fds"])
		}
		// Nothing but stdio and the two sockets crossed exec (the worker's
		// Go runtime opens its own anon inodes and cgroup files, and ReadDir
		// its directory fd).
		for fd, target := range r["fds"].(map[string]any) {
			n, _ := strconv.Atoi(fd)
			if n > 4 && !strings.HasPrefix(target.(string), "anon_inode:") && !strings.HasPrefix(target.(string), "/proc/") && !strings.HasPrefix(target.(string), "/sys/fs/cgroup/") {
				t.Errorf("worker %s: fd %s -> %s leaked into the worker", slot, fd, target)
			}
		}
	}
	if len(pids) != 2 {
		t.Errorf("worker pids %v", pids)
	}
	p.stop(Graceful)
	if !p.up.has("STOPPING=1") {
		t.Errorf("no STOPPING=1 upward: %v", p.up.msgs)
	}
}

func TestWorkersServeOnInheritedSocket(t *testing.T) {
	sockets := bindLocal(t, "web")
	p := startPool(t, &config.Config{Workers: 3}, sockets, "BATON_TEST_MODE=serve")
	p.waitFor("3 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 3 })
	addr := strings.TrimPrefix(sockets[0].Addr, "tcp://")
	seen := map[string]bool{}
	for i := 0; i < 300 && len(seen) < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		seen[strings.TrimSpace(line)] = true
	}
	if len(seen) != 3 {
		t.Errorf("answered by %d distinct workers, want 3: %v", len(seen), seen)
	}
	p.stop(Graceful)
}

func TestExecReadiness(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 2, Readiness: config.ReadinessExec}, nil, "BATON_TEST_MODE=exec-ready")
	p.waitFor("2 ready without READY=1", 20*time.Second, func(s Snapshot) bool { return s.Ready == 2 })
	p.stop(Graceful)
}

func TestDescendantReadinessIsAttributedToItsWorker(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 1}, nil, "BATON_TEST_MODE=child-ready")
	snap := p.waitFor("ready via a child process", 20*time.Second, func(s Snapshot) bool { return s.Ready == 1 })
	if snap.Workers[0].Status != "from a child" {
		t.Errorf("status %q", snap.Workers[0].Status)
	}
	p.stop(Graceful)
}

func TestExecFailureIsReportedAndBackedOff(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 1, Command: []string{"/nonexistent/app", "--flag"}}, nil)
	p.waitFor("3 failures", 20*time.Second, func(s Snapshot) bool { return s.Failures[1] >= 3 })
	if !p.logged("spawn worker 1: exec /nonexistent/app: no such file or directory") {
		t.Errorf("exec error not logged:\n%s", p.logLines())
	}
	if !p.up.has("degraded: worker 1 crash-looping") {
		t.Errorf("STATUS does not say degraded: %v", p.up.msgs)
	}
	p.stop(Graceful)
}

// A pool that was ready once and then crash-loops keeps running, backed
// off, and says so: systemd cannot fix a broken app by restarting baton.
func TestCrashLoopBacksOffAndKeepsRunning(t *testing.T) {
	// Each lives long enough (BATON_TEST_LIFE) for the pool to count as
	// having been ready.
	p := startPool(t, &config.Config{Workers: 2}, nil, "BATON_TEST_MODE=ready-then-exit", "BATON_TEST_LIFE=1200ms")
	snap := p.waitFor("6 failures per slot", 30*time.Second, func(s Snapshot) bool { return s.Failures[1] >= 6 && s.Failures[2] >= 6 })
	if snap.Stopping {
		t.Errorf("baton gave up on a pool that was ready before")
	}
	// The delays logged grow: 100ms, 200ms, 400ms, 800ms, 1.6s.
	var delays []string
	for _, e := range p.hook.AllEntries() {
		if e.Data["worker"] == 1 && e.Data["delay"] != nil {
			delays = append(delays, e.Data["delay"].(string))
		}
	}
	want := []string{"100ms", "200ms", "400ms", "800ms", "1.6s"}
	if len(delays) < len(want) || strings.Join(delays[:len(want)], " ") != strings.Join(want, " ") {
		t.Errorf("respawn delays %v, want them to start %v", delays, want)
	}
	if !p.logged("worker 1 of generation 1 exited with status 1") || !p.logged("crash-looping, 5 failures in a row") {
		t.Errorf("log:\n%s", p.logLines())
	}
	if !strings.Contains(snap.Status, "crash-looping") {
		t.Errorf("status %q", snap.Status)
	}
	p.stop(Graceful)
}

func TestBackoffSchedule(t *testing.T) {
	for n, want := range map[int]time.Duration{0: 0, 1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 5: 1600 * time.Millisecond, 30: backoffMax} {
		if got := backoff(n); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestBootTimeoutStopsWorker(t *testing.T) {
	// SIGTERM as the timeout signal keeps the test log free of stack dumps.
	p := startPool(t, &config.Config{Workers: 1, BootTimeout: 300 * time.Millisecond, TimeoutSignal: config.Signal(syscall.SIGTERM)}, nil, "BATON_TEST_MODE=never-ready")
	p.waitFor("a boot failure", 20*time.Second, func(s Snapshot) bool { return s.Failures[1] >= 1 })
	if !p.logged("worker 1 boot-timeout 300ms expired (no READY=1") || !p.logged("sending SIGTERM, SIGKILL in 5s") {
		t.Errorf("log:\n%s", p.logLines())
	}
	p.stop(Fast)
}

func TestGracefulStopWaitsThenKills(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 2, GracefulTimeout: 10 * time.Second}, nil, "BATON_TEST_MODE=ready", "BATON_TEST_TERM_DELAY=300ms")
	p.waitFor("2 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 2 })
	p.stop(Graceful)
	if p.logged("SIGKILL") || !p.logged("worker 1 of generation 1 exited with status 0") {
		t.Errorf("a worker that drains within graceful-timeout must exit on its own:\n%s", p.logLines())
	}

	q := startPool(t, &config.Config{Workers: 1, GracefulTimeout: 200 * time.Millisecond, TimeoutGrace: 100 * time.Millisecond}, nil, "BATON_TEST_MODE=ignore-term")
	q.waitFor("1 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 1 })
	q.stop(Graceful)
	if !q.logged("still running 200ms after graceful stop; sending SIGKILL") || !q.logged("killed by signal SIGKILL") {
		t.Errorf("log:\n%s", q.logLines())
	}
}

func TestSpoofedAndJunkNotificationsAreDropped(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 1}, nil, "BATON_TEST_MODE=never-ready")
	p.waitFor("1 starting worker", 20*time.Second, func(s Snapshot) bool { return len(s.Workers) == 1 })
	// The test process is not a worker: its READY=1 must not count, even
	// when it claims a worker's pid in the payload.
	snd, err := sdnotify.NewSender(p.s.NotifySocket())
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := p.s.Snapshot()
	if err := snd.Send("READY=1\nMAINPID=" + strconv.Itoa(snap.Workers[0].PID)); err != nil {
		t.Fatal(err)
	}
	devnull, _ := os.Open("/dev/null")
	defer devnull.Close()
	for _, junk := range []string{"garbage", strings.Repeat("X=", 5000), "READY=2"} {
		if err := snd.Send(junk, int(devnull.Fd())); err != nil {
			t.Fatal(err)
		}
	}
	snap = p.waitFor("4 drops", 10*time.Second, func(s Snapshot) bool {
		return s.Dropped["foreign"] == 1 && s.Dropped["oversized"] == 1 && s.Dropped["malformed"] == 2
	})
	if snap.Ready != 0 {
		t.Errorf("a spoofed READY=1 made a worker ready")
	}
	if !p.logged("sender is not a worker") {
		t.Errorf("log:\n%s", p.logLines())
	}
	p.stop(Fast)
}
