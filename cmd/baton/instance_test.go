package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/control"
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
