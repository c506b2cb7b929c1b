package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/internal/procfs"
	"github.com/batonhq/baton/scoreboard"
)

// pool is the example running under one case, until stopped.
type pool struct {
	addr string
	stop func() error
	// pids are the pool's processes now: baton and its workers, or the
	// harness's workers (the harness itself is this benchmark).
	pids func() []int
}

func startPool(dir string, c reportsCase, workers int) (*pool, error) {
	if c.runner == "baton" {
		return startBaton(dir, c, workers)
	}
	return startHarness(dir, c, workers)
}

// notifySocket is a manager's end of NOTIFY_SOCKET: it counts READY=1
// and discards the rest (request datagrams included) as fast as they come.
type notifySocket struct {
	path  string
	conn  *net.UnixConn
	ready chan struct{}
	done  chan struct{}
}

func newNotifySocket(dir, name string) (*notifySocket, error) {
	path := filepath.Join(dir, name)
	_ = os.Remove(path)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	// Datagrams at request rate: a deep queue keeps senders from blocking
	// on this reader's scheduling.
	_ = c.SetReadBuffer(4 << 20)
	n := &notifySocket{path: path, conn: c, ready: make(chan struct{}, 1024), done: make(chan struct{})}
	go func() {
		defer close(n.done)
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(buf[:k]), "\n") {
				if line == "READY=1" {
					n.ready <- struct{}{}
				}
			}
		}
	}()
	return n, nil
}

func (n *notifySocket) waitReady(k int, within time.Duration) error {
	deadline := time.After(within)
	for range k {
		select {
		case <-n.ready:
		case <-deadline:
			return fmt.Errorf("not READY=1 within %s", within)
		}
	}
	return nil
}

func (n *notifySocket) close() { n.conn.Close(); <-n.done; os.Remove(n.path) }

// startBaton runs `baton run` with the example, binding the socket itself.
// baton's request clock is on (an hour, never reached) whenever requests
// are reported, as in production.
func startBaton(dir string, c reportsCase, workers int) (*pool, error) {
	port, err := load.FreePort()
	if err != nil {
		return nil, err
	}
	ns, err := newNotifySocket(dir, c.slug()+"-notify.sock")
	if err != nil {
		return nil, err
	}
	args := []string{"run", "-w", strconv.Itoa(workers), "-b", fmt.Sprintf("web=tcp://127.0.0.1:%d", port), "--control", filepath.Join(dir, c.slug()+"-control.sock"), "--log-level", "warning"}
	if c.reports != "off" {
		args = append(args, "--request-timeout", "1h")
	}
	args = append(args, "--", filepath.Join(dir, "hello"))
	cmd := exec.Command(filepath.Join(dir, "baton"), args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.path, "BATON_REQUEST_REPORTS="+c.reports)
	logf, err := os.Create(filepath.Join(dir, c.slug()+".log"))
	if err != nil {
		ns.close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		ns.close()
		logf.Close()
		return nil, err
	}
	stop := func() error {
		defer ns.close()
		defer logf.Close()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			return err
		}
		return cmd.Wait()
	}
	if err := ns.waitReady(1, 60*time.Second); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		b, _ := os.ReadFile(logf.Name())
		ns.close()
		logf.Close()
		return nil, fmt.Errorf("baton: %w\n%s", err, b)
	}
	return &pool{addr: fmt.Sprintf("127.0.0.1:%d", port), stop: stop, pids: func() []int { return withChildren(cmd.Process.Pid) }}, nil
}

// startHarness plays baton's part with no supervision at all: it binds the
// socket, creates a scoreboard per worker when the case has one, starts
// the workers as baton would (sockets from fd 3, LISTEN_PID their own pid,
// the board right after, BATON_SCOREBOARD_FD), and reads every board's
// oldest request every 10ms, as baton's clock would.
func startHarness(dir string, c reportsCase, workers int) (*pool, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	lf, err := l.(*net.TCPListener).File()
	addr := l.Addr().String()
	l.Close()
	if err != nil {
		return nil, err
	}
	ns, err := newNotifySocket(dir, c.slug()+"-notify.sock")
	if err != nil {
		lf.Close()
		return nil, err
	}
	var cmds []*exec.Cmd
	var boards []*scoreboard.Board
	cleanup := func() error {
		var errs []error
		for _, cmd := range cmds {
			errs = append(errs, cmd.Process.Signal(syscall.SIGTERM))
		}
		for _, cmd := range cmds {
			errs = append(errs, cmd.Wait())
		}
		for _, b := range boards {
			errs = append(errs, b.Close())
		}
		ns.close()
		errs = append(errs, lf.Close())
		return errors.Join(errs...)
	}
	for i := 1; i <= workers; i++ {
		cmd := exec.Command("/bin/sh", "-c", `export LISTEN_PID=$$; exec "$0" "$@"`, filepath.Join(dir, "hello"))
		cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=web", "NOTIFY_SOCKET="+ns.path,
			"BATON_WORKER="+strconv.Itoa(i), "BATON_GENERATION=1", "BATON_REQUEST_REPORTS="+c.reports)
		cmd.ExtraFiles = []*os.File{lf}
		if c.board {
			b, err := scoreboard.Create(scoreboard.DefaultSlots)
			if err != nil {
				return nil, errors.Join(err, cleanup())
			}
			boards = append(boards, b)
			cmd.ExtraFiles = append(cmd.ExtraFiles, b.File())
			cmd.Env = append(cmd.Env, scoreboard.EnvFD+"=4")
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, errors.Join(err, cleanup())
		}
		cmds = append(cmds, cmd)
	}
	if err := ns.waitReady(workers, 60*time.Second); err != nil {
		return nil, errors.Join(fmt.Errorf("harness: %w", err), cleanup())
	}
	for _, b := range boards {
		if b.Writer() == 0 {
			return nil, errors.Join(errors.New("harness: a worker did not attach to its scoreboard"), cleanup())
		}
	}
	quit, read := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(read)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				for _, b := range boards {
					if r, ok := b.Oldest(); ok && time.Since(r.Start) > time.Minute {
						fmt.Fprintf(os.Stderr, "harness: a request running for %s: %s\n", time.Since(r.Start), r.Label)
					}
				}
			}
		}
	}()
	pids := func() []int {
		var out []int
		for _, cmd := range cmds {
			out = append(out, cmd.Process.Pid)
		}
		return out
	}
	return &pool{addr: addr, stop: func() error { close(quit); <-read; return cleanup() }, pids: pids}, nil
}

// withChildren is pid and its children: baton and its workers, which it
// starts itself (the exec shim keeps the pid).
func withChildren(pid int) []int {
	out := []int{pid}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err == nil && procfs.Parent(n) == pid {
			out = append(out, n)
		}
	}
	return out
}
