package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/scoreboard"
)

// A reports case is one way of running the example: under baton, or under
// a harness that plays baton's part in passing a scoreboard (until baton
// passes one itself), with request reporting off, by datagram or through
// the scoreboard.
type reportsCase struct {
	name    string
	runner  string // "baton" or "harness"
	reports string // BATON_REQUEST_REPORTS for the workers
	board   bool   // the harness passes a scoreboard
}

func reportsCases(batonScoreboard bool) []reportsCase {
	cs := []reportsCase{
		{"baton, reporting off", "baton", "off", false},
		{"baton, datagrams", "baton", "notify", false},
	}
	if batonScoreboard {
		cs = append(cs, reportsCase{"baton, scoreboard", "baton", "scoreboard", false})
	}
	return append(cs,
		reportsCase{"harness, reporting off", "harness", "off", false},
		reportsCase{"harness, scoreboard", "harness", "scoreboard", true},
	)
}

// pool is the example running under one case, until stopped.
type pool struct {
	addr string
	stop func() error
}

// runReports measures every case in rounds, interleaved so that drift on a
// shared machine touches all of them alike, and reports each case's
// median throughput against reporting off under the same runner.
// reportsResult is one case's numbers.
type reportsResult struct {
	c         reportsCase
	perSecond float64
	load      *tally
}

func runReports(ctx context.Context, o options, out io.Writer) ([]reportsResult, error) {
	dir, err := os.MkdirTemp("", "baton-bench-serve-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := build(dir); err != nil {
		return nil, err
	}
	cases := reportsCases(o.batonScoreboard)
	rates := make([][]float64, len(cases))
	results := make([]*tally, len(cases))
	for round := range o.rounds {
		for i, c := range cases {
			p, err := startPool(ctx, dir, c, o.workers)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			stop := make(chan struct{})
			done := make(chan *tally, 1)
			go func() { done <- drive(p.addr, o.path, o.concurrency, 0, stop) }()
			werr := sleep(ctx, o.warmup)
			close(stop)
			<-done
			stop = make(chan struct{})
			go func() { done <- drive(p.addr, o.path, o.concurrency, 0, stop) }()
			began := time.Now()
			if werr == nil {
				werr = sleep(ctx, o.duration)
			}
			close(stop)
			t := <-done
			elapsed := time.Since(began)
			if err := p.stop(); err != nil {
				return nil, fmt.Errorf("%s: stop: %w", c.name, err)
			}
			if werr != nil {
				return nil, werr
			}
			rates[i] = append(rates[i], float64(t.requests)/elapsed.Seconds())
			if results[i] == nil {
				results[i] = newTally()
			}
			results[i].add(t)
			fmt.Fprintf(os.Stderr, "round %d, %s: %.0f req/s, %d failed\n", round+1, c.name, float64(t.requests)/elapsed.Seconds(), t.failedTotal())
		}
	}
	fmt.Fprintf(out, "request reporting: %d workers, %d keep-alive clients, GET %s, %d rounds of %s per case (median req/s)\n\n", o.workers, o.concurrency, o.path, o.rounds, o.duration)
	fmt.Fprintln(out, "| case | req/s (median) | rounds | vs reporting off, same round (median) | requests | failed | p50 | p99 |")
	fmt.Fprintln(out, "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
	// Each case is compared with reporting off under the same runner in
	// the same round, minutes apart at most, and the median of those
	// ratios taken: on a shared machine the load drifts more between
	// rounds than within one.
	base := map[string]int{}
	for i, c := range cases {
		if c.reports == "off" {
			base[c.runner] = i
		}
	}
	for i, c := range cases {
		m := median(rates[i])
		var rs []string
		for _, r := range rates[i] {
			rs = append(rs, strconv.Itoa(int(r)))
		}
		vs := "—"
		if b, ok := base[c.runner]; ok && c.reports != "off" {
			var ratios []float64
			for r := range rates[i] {
				ratios = append(ratios, rates[i][r]/rates[b][r])
			}
			vs = fmt.Sprintf("%+.1f%%", (median(ratios)-1)*100)
		}
		p50, p99 := percentiles(results[i].latencies)
		fmt.Fprintf(out, "| %s | %.0f | %s | %s | %d | %d | %s | %s |\n", c.name, m, strings.Join(rs, ", "), vs, results[i].requests, results[i].failedTotal(), round(p50), round(p99))
	}
	for i, c := range cases {
		for k, e := range results[i].firstErr {
			fmt.Fprintf(out, "\n%s: %d %s, first: %s\n", c.name, results[i].failed[k], k, e)
		}
	}
	var res []reportsResult
	for i, c := range cases {
		res = append(res, reportsResult{c: c, perSecond: median(rates[i]), load: results[i]})
	}
	return res, nil
}

func startPool(ctx context.Context, dir string, c reportsCase, workers int) (*pool, error) {
	if c.runner == "baton" {
		return startBaton(ctx, dir, c, workers)
	}
	return startHarness(ctx, dir, c, workers)
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
func startBaton(ctx context.Context, dir string, c reportsCase, workers int) (*pool, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	ns, err := newNotifySocket(dir, "baton-notify.sock")
	if err != nil {
		return nil, err
	}
	args := []string{"run", "-w", strconv.Itoa(workers), "-b", fmt.Sprintf("web=tcp://127.0.0.1:%d", port), "--control", filepath.Join(dir, "control.sock"), "--log-level", "warning"}
	if c.reports != "off" {
		args = append(args, "--request-timeout", "1h")
	}
	args = append(args, "--", filepath.Join(dir, "hello"))
	cmd := exec.Command(filepath.Join(dir, "baton"), args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.path, "BATON_REQUEST_REPORTS="+c.reports)
	logf, err := os.Create(filepath.Join(dir, "baton.log"))
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
	return &pool{addr: fmt.Sprintf("127.0.0.1:%d", port), stop: stop}, nil
}

// startHarness plays baton's part with no supervision at all: it binds the
// socket, creates a scoreboard per worker when the case has one, starts
// the workers as baton would (sockets from fd 3, LISTEN_PID their own pid,
// the board right after, BATON_SCOREBOARD_FD), and reads every board's
// oldest request every 10ms, as baton's clock would.
func startHarness(ctx context.Context, dir string, c reportsCase, workers int) (*pool, error) {
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
	ns, err := newNotifySocket(dir, "harness-notify.sock")
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
	return &pool{addr: addr, stop: func() error { close(quit); <-read; return cleanup() }}, nil
}

// sleep waits d, or less if ctx ends (an interrupted benchmark still
// stops what it started).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func percentiles(l []time.Duration) (p50, p99 time.Duration) {
	if len(l) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*50/100], s[len(s)*99/100]
}

func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}
