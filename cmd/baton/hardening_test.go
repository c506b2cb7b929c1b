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
