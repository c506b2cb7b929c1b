package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/metrics"
	"github.com/batonhq/baton/internal/testutil"
	"golang.org/x/sys/unix"
)

// instance is a baton run by a test, with its log.
type instance struct {
	t       *testing.T
	cmd     *exec.Cmd
	pid     int
	control string
	logPath string
	workers map[int]bool // every worker pid seen, killed at cleanup if left
}

type opts struct {
	args    []string // flags before --
	command []string // the worker
	env     []string
	stderr  *os.File // default: the log file
}

// startBaton runs baton in a session of its own, as systemd runs a
// service, and stops it at cleanup; workers it left behind are killed.
func startBaton(t *testing.T, o opts) *instance {
	t.Helper()
	dir := shortTempDir(t)
	in := &instance{t: t, control: filepath.Join(dir, "control.sock"), logPath: filepath.Join(dir, "baton.log"), workers: map[int]bool{}}
	logf, err := os.Create(in.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"run", "--control", in.control}, o.args...)
	args = append(append(args, "--"), o.command...)
	in.cmd = exec.Command(batonBin, args...)
	in.cmd.Env = append([]string{"PATH=/usr/bin:/bin", "TMPDIR=" + dir}, o.env...)
	in.cmd.Stdout = logf
	in.cmd.Stderr = logf
	if o.stderr != nil {
		in.cmd.Stderr = o.stderr
	}
	in.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.pid = in.cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = in.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = in.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = in.cmd.Process.Kill()
			<-exited
			t.Error("baton did not stop on SIGTERM")
		}
		for pid := range in.workers {
			if testutil.Alive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("baton log:\n%s", in.log())
		}
	})
	return in
}

// shortTempDir is a temporary directory with a short path: unix socket
// paths must fit in 108 bytes, and test names are long.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (in *instance) log() string {
	b, _ := os.ReadFile(in.logPath)
	return string(b)
}

// status asks baton for its status, within a few seconds.
func (in *instance) status(within time.Duration) (*control.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	st, err := control.GetStatus(ctx, in.control)
	if err == nil {
		for _, w := range st.Pool {
			in.workers[w.PID] = true
		}
	}
	return st, err
}

// waitReady waits until n workers are ready.
func (in *instance) waitReady(n int) *control.Status {
	in.t.Helper()
	var st *control.Status
	if !testutil.Eventually(in.t, 60*time.Second, func() bool {
		var err error
		st, err = in.status(5 * time.Second)
		return err == nil && st.Ready == n && len(st.Pool) == n
	}) {
		in.t.Fatalf("%d workers never ready: %+v\nlog:\n%s", n, st, in.log())
	}
	return st
}

func (in *instance) fds() int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", in.pid))
	if err != nil {
		in.t.Fatal(err)
	}
	return len(ents)
}

// setNofile sets baton's soft RLIMIT_NOFILE and restores it at cleanup.
func (in *instance) setNofile(soft uint64) {
	in.t.Helper()
	var old unix.Rlimit
	if err := unix.Prlimit(in.pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		in.t.Fatal(err)
	}
	lim := old
	lim.Cur = soft
	if err := unix.Prlimit(in.pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		in.t.Fatal(err)
	}
	in.t.Cleanup(func() { _ = unix.Prlimit(in.pid, unix.RLIMIT_NOFILE, &old, nil) })
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func scrape(url string) error { return scrapeWithin(url, 10*time.Second) }

func scrapeWithin(url string, timeout time.Duration) error {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && !strings.Contains(string(b), "baton_workers_wanted") {
		err = fmt.Errorf("not baton's metrics: %.200s", b)
	}
	return err
}

func sleeper(extra ...string) opts {
	return opts{args: append([]string{"--readiness", "exec"}, extra...), command: []string{"/bin/sleep", "infinity"}}
}

// Running out of fds makes accept fail (EMFILE); the control and metrics
// servers go on, and answer once fds free up, even the connection that
// waited.
func TestServersSurviveFDExhaustion(t *testing.T) {
	port := freePort(t)
	in := startBaton(t, sleeper("-b", fmt.Sprintf("metrics=tcp://127.0.0.1:%d", port), "--metrics-socket", "metrics"))
	in.waitReady(1)
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	if err := scrape(url); err != nil {
		t.Fatal(err)
	}
	// A soft limit of 0 leaves baton the fds it has and no new one.
	in.setNofile(0)
	waiting, err := net.Dial("unix", in.control)
	if err != nil {
		t.Fatal(err)
	}
	defer waiting.Close()
	if _, err := io.WriteString(waiting, `{"command":"status"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	if err := scrapeWithin(url, 2*time.Second); err == nil {
		t.Fatal("a scrape was answered with no fd to spare")
	}
	if !testutil.Eventually(t, 20*time.Second, func() bool { return strings.Count(in.log(), "too many open files") >= 2 }) {
		t.Fatal("accept never failed with EMFILE")
	}
	var hard unix.Rlimit
	if err := unix.Prlimit(in.pid, unix.RLIMIT_NOFILE, nil, &hard); err != nil {
		t.Fatal(err)
	}
	in.setNofile(hard.Max)

	if err := waiting.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(waiting); err != nil || !strings.Contains(string(b), `"ok":true`) {
		t.Errorf("the request that waited out EMFILE: %q %v", b, err)
	}
	if _, err := in.status(20 * time.Second); err != nil {
		t.Errorf("control socket after EMFILE: %v", err)
	}
	if err := scrape(url); err != nil {
		t.Errorf("metrics after EMFILE: %v", err)
	}
	// Retries back off and are logged at a limited rate, not per attempt.
	if n := strings.Count(in.log(), "too many open files"); n > 40 {
		t.Errorf("%d log lines for one spell of EMFILE", n)
	}
}

// Idle connections to the metrics socket from another user cost baton a
// bounded number of fds: the control socket and worker spawns go on.
func TestIdleMetricsConnectionsAreCapped(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as another user (CI runs as root)")
	}
	port := freePort(t)
	in := startBaton(t, sleeper("-b", fmt.Sprintf("metrics=tcp://127.0.0.1:%d", port), "--metrics-socket", "metrics"))
	in.waitReady(1)
	base := in.fds()
	// Room for 200 more fds: 400 connections would exhaust it uncapped.
	in.setNofile(uint64(base + 200))

	holder := exec.Command(os.Args[0])
	holder.Env = append(os.Environ(), roleEnv+"=holder", "BATON_TEST_ADDR="+fmt.Sprintf("127.0.0.1:%d", port), "BATON_TEST_CONNS=400")
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	holder.Stderr = os.Stderr
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := holder.Wait(); err != nil {
			t.Errorf("holder: %v", err)
		}
	})
	line := make([]byte, 64)
	n, err := stdout.Read(line)
	if err != nil || !strings.HasPrefix(string(line[:n]), "held 400 as uid 65534") {
		t.Fatalf("holder: %q %v", line[:n], err)
	}
	// Give baton the chance to accept all it will.
	testutil.Eventually(t, 3*time.Second, func() bool { return in.fds() >= base+metrics.MaxConns })
	if got := in.fds(); got > base+metrics.MaxConns+8 {
		t.Errorf("baton has %d fds with 400 idle metrics connections (%d before): not capped near %d", got, base, metrics.MaxConns)
	}
	if _, err := in.status(20 * time.Second); err != nil {
		t.Fatalf("control socket: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := control.Call(ctx, in.control, control.Request{Command: "scale", Delta: 1}); err != nil {
		t.Fatalf("scale: %v", err)
	}
	in.waitReady(2)
	if strings.Contains(in.log(), "too many open files") {
		t.Errorf("baton ran out of fds")
	}
}

// A worker, or a process a worker started, cannot use the control socket
// unless worker-control allows it; the refusal is logged with its reason.
func TestWorkersCannotUseTheControlSocket(t *testing.T) {
	for _, tc := range []struct {
		name   string
		orphan bool
		allow  bool
	}{
		{"worker", false, false},
		{"orphaned grandchild", true, false},
		{"allowed", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortTempDir(t)
			out := filepath.Join(dir, "answer")
			ctlPath := filepath.Join(dir, "ctl.sock")
			o := opts{args: []string{"--readiness", "exec", "--control", ctlPath}, command: []string{os.Args[0]},
				env: []string{roleEnv + "=scaler", "BATON_TEST_CONTROL=" + ctlPath, "BATON_TEST_OUT=" + out}}
			if tc.orphan {
				o.env = append(o.env, "BATON_TEST_ORPHAN=1")
			}
			if tc.allow {
				o.args = append(o.args, "--worker-control")
			}
			in := startBaton(t, o)
			in.control = ctlPath
			var answer []byte
			if !testutil.Eventually(t, 60*time.Second, func() bool {
				var err error
				answer, err = os.ReadFile(out)
				return err == nil
			}) {
				t.Fatalf("the worker never got an answer\n%s", in.log())
			}
			if tc.allow {
				if !strings.HasPrefix(string(answer), "ok: scaling by +3") {
					t.Fatalf("worker-control = true: %s", answer)
				}
				in.waitReady(4)
				return
			}
			if !strings.Contains(string(answer), "error: refused: pid") || !strings.Contains(string(answer), "is one of baton's workers or was started by one") {
				t.Errorf("the worker's scale was not refused: %s", answer)
			}
			if tc.orphan && strings.Contains(string(answer), fmt.Sprintf("parent %d\n", in.pid)) {
				t.Errorf("the asker was baton's child, not an orphan: %s", answer)
			}
			if !testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(in.log(), "workers may not use the control socket") }) {
				t.Error("the refusal was not logged")
			}
			if !strings.Contains(in.log(), "it asked for scale +3") {
				t.Error("the log does not say what the worker asked for")
			}
			st := in.waitReady(1)
			if st.Workers != 1 {
				t.Errorf("the pool was scaled to %d", st.Workers)
			}
		})
	}
}

// STATUS= text reaches `baton status` escaped.
func TestStatusTableEscapesWorkerText(t *testing.T) {
	in := startBaton(t, opts{command: []string{os.Args[0]}, env: []string{roleEnv + "=status"}})
	st := in.waitReady(1)
	if st.Pool[0].Status != hostileStatus {
		t.Fatalf("status %q, want the worker's text kept as data", st.Pool[0].Status)
	}
	out, err := exec.Command(batonBin, "status", "--control", in.control).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range string(out) {
		if (r < ' ' && r != '\n') || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			t.Fatalf("control character %U reached the operator's terminal:\n%q", r, out)
		}
	}
	if !strings.Contains(string(out), `\x1b]0;owned\x07\x1b[2J\x1b[31mred\u009b0m\x7fend`) {
		t.Errorf("worker text not shown escaped:\n%s", out)
	}
}

// A second baton never takes over a socket that a live one listens on; it
// fails naming the path. A dead baton's socket files are replaced.
func TestSecondInstanceDoesNotTakeOverLiveSockets(t *testing.T) {
	dir := shortTempDir(t)
	web := filepath.Join(dir, "web.sock")
	first := startBaton(t, sleeper("-b", "web=unix://"+web))
	first.waitReady(1)

	second := func(args ...string) (int, string) {
		// One that takes the socket over runs on: it is stopped, and fails
		// the test.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, batonBin, append(append([]string{"run", "--readiness", "exec"}, args...), "--", "/bin/sleep", "infinity")...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + shortTempDir(t)}
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
		cmd.WaitDelay = 20 * time.Second
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ctx.Err() != nil {
			t.Fatalf("second baton: %v (it ran on)\n%s", err, out)
		}
		return ee.ExitCode(), string(out)
	}
	code, out := second("-b", "web=unix://"+web, "--control", filepath.Join(dir, "other.sock"))
	if code != 1 || !strings.Contains(out, web+": address already in use") {
		t.Errorf("same unix socket: exit %d\n%s", code, out)
	}
	code, out = second("-b", "web=unix://"+filepath.Join(dir, "web2.sock"), "--control", first.control)
	if code != 1 || !strings.Contains(out, first.control+": address already in use") {
		t.Errorf("same control socket: exit %d\n%s", code, out)
	}
	// The first one still has both.
	if _, err := first.status(10 * time.Second); err != nil {
		t.Errorf("first baton's control socket: %v", err)
	}
	if c, err := net.Dial("unix", web); err != nil {
		t.Errorf("first baton's web socket: %v", err)
	} else {
		c.Close()
	}
}

// baton survives the loss of its stderr (the reader of its log pipe died):
// it does not die of SIGPIPE, its workers go on serving, and they have
// SIGPIPE at its default disposition, as they would under systemd.
func TestSurvivesClosedStderr(t *testing.T) {
	port := freePort(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	in := startBaton(t, opts{args: []string{"-b", fmt.Sprintf("web=tcp://127.0.0.1:%d", port)}, command: []string{helloBin}, stderr: w})
	w.Close()
	drained := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, r); close(drained) }()
	st := in.waitReady(1)
	r.Close() // the log reader dies
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	get := func() error {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	// Make baton log: scale up (spawn and readiness are logged).
	if err := syscall.Kill(in.pid, syscall.SIGTTIN); err != nil {
		t.Fatal(err)
	}
	in.waitReady(2)
	if !testutil.Alive(in.pid) {
		t.Fatal("baton died")
	}
	if err := get(); err != nil {
		t.Errorf("workers stopped serving: %v", err)
	}
	for _, wk := range st.Pool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", wk.PID))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if hex, ok := strings.CutPrefix(line, "SigIgn:"); ok {
				mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
				if err != nil {
					t.Fatal(err)
				}
				if mask&(1<<(uint(syscall.SIGPIPE)-1)) != 0 {
					t.Errorf("worker %d ignores SIGPIPE (SigIgn %s): baton's disposition leaked across exec", wk.PID, strings.TrimSpace(hex))
				}
			}
		}
	}
	<-drained
}
