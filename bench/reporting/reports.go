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

	"github.com/batonhq/baton/bench/load"
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
	// calibration: reporting off too, measured beside reporting off, to
	// show what the method itself makes of two identical pools.
	calibration bool
}

// slug names the case's files.
func (c reportsCase) slug() string {
	if c.calibration {
		return c.runner + "-" + c.reports + "-again"
	}
	return c.runner + "-" + c.reports
}

func reportsCases(batonScoreboard, calibrate bool) []reportsCase {
	cs := []reportsCase{
		{name: "baton, reporting off", runner: "baton", reports: "off"},
		{name: "baton, datagrams", runner: "baton", reports: "notify"},
	}
	if batonScoreboard {
		cs = append(cs, reportsCase{name: "baton, scoreboard", runner: "baton", reports: "scoreboard"})
	}
	cs = append(cs,
		reportsCase{name: "harness, reporting off", runner: "harness", reports: "off"},
		reportsCase{name: "harness, scoreboard", runner: "harness", reports: "scoreboard", board: true},
	)
	if calibrate {
		cs = append(cs, reportsCase{name: "harness, reporting off again (A/A)", runner: "harness", reports: "off", calibration: true})
	}
	return cs
}

// pool is the example running under one case, until stopped.
type pool struct {
	addr string
	stop func() error
}

// runReports measures every case in rounds, interleaved so that drift on a
// shared machine touches all of them alike, and reports each case's
// median throughput against reporting off under the same runner.
// reportsResult is one reporting case's numbers, beside reporting off.
type reportsResult struct {
	c                       reportsCase
	perSecond, offPerSecond float64 // medians over the rounds
	on, off                 load.Summary
}

// runReports measures each reporting case against reporting off under the
// same runner, both pools at once, each with its own clients: they share
// the machine at the same moments, so what another process on a shared
// machine takes, it takes from both, and the ratio of their throughputs is
// what reporting costs. Rounds repeat that; the median ratio is reported.
func runReports(ctx context.Context, o options, out io.Writer) ([]reportsResult, error) {
	dir, err := os.MkdirTemp("", "baton-bench-reporting-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := build(dir); err != nil {
		return nil, err
	}
	cases := reportsCases(o.batonScoreboard, o.calibrate)
	// pairs: each reporting case with its runner's reporting-off case.
	var pairs [][2]int
	for i, c := range cases {
		for j, b := range cases {
			if b.runner == c.runner && b.reports == "off" && !b.calibration && (c.reports != "off" || c.calibration) {
				pairs = append(pairs, [2]int{j, i})
			}
		}
	}
	// rates[p][0] are pair p's reporting-off rates, [1] its reporting ones;
	// results[p] all of their records.
	rates := make([][2][]float64, len(pairs))
	results := make([][2]*load.Result, len(pairs))
	for round := range o.rounds {
		for p, pr := range pairs {
			got, err := measureTogether(ctx, dir, o, cases[pr[0]], cases[pr[1]])
			if err != nil {
				return nil, err
			}
			for k := range pr {
				rates[p][k] = append(rates[p][k], got[k].Summary().PerSecond)
				if results[p][k] == nil {
					results[p][k] = &load.Result{}
				}
				results[p][k].Records = append(results[p][k].Records, got[k].Records...)
			}
			fmt.Fprintf(os.Stderr, "round %d: %s %.0f req/s, %s %.0f req/s\n", round+1, cases[pr[0]].name, rates[p][0][round], cases[pr[1]].name, rates[p][1][round])
		}
	}
	fmt.Fprintf(out, "request reporting: each case beside reporting off under the same runner, at once; %d workers and %d keep-alive clients each, GET %s, %d rounds of %s\n\n", o.workers, o.concurrency, o.path, o.rounds, o.duration)
	fmt.Fprintln(out, "| case | req/s (median) | req/s, reporting off beside it (median) | on/off, each round | on vs off (median) | failed | p50 | p99 |")
	fmt.Fprintln(out, "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
	var res []reportsResult
	for p, pr := range pairs {
		off, on := rates[p][0], rates[p][1]
		var ratios []float64
		var rs []string
		for r := range on {
			ratios = append(ratios, on[r]/off[r])
			rs = append(rs, fmt.Sprintf("%.2f", on[r]/off[r]))
		}
		sOn, sOff := results[p][1].Summary(), results[p][0].Summary()
		fmt.Fprintf(out, "| %s | %.0f | %.0f | %s | %+.1f%% | %d | %s | %s |\n", cases[pr[1]].name, median(on), median(off), strings.Join(rs, ", "), (median(ratios)-1)*100, sOn.Failed+sOff.Failed, load.Round(sOn.P50), load.Round(sOn.P99))
		for k, s := range [2]load.Summary{sOff, sOn} {
			if s.Failed > 0 {
				fmt.Fprintf(out, "\n%s: %d failed (%s), first: %v\n", cases[pr[k]].name, s.Failed, s.FailedKinds(), results[p][k].Failures()[0])
			}
		}
		res = append(res, reportsResult{c: cases[pr[1]], perSecond: median(on), offPerSecond: median(off), on: sOn, off: sOff})
	}
	return res, nil
}

// measureTogether runs two cases' pools at once, loads both with their
// own clients, and returns each one's records.
func measureTogether(ctx context.Context, dir string, o options, a, b reportsCase) ([2]*load.Result, error) {
	var res [2]*load.Result
	var pools [2]*pool
	stopAll := func() error {
		var errs []error
		for _, p := range pools {
			if p != nil {
				errs = append(errs, p.stop())
			}
		}
		return errors.Join(errs...)
	}
	for k, c := range [2]reportsCase{a, b} {
		p, err := startPool(dir, c, o.workers)
		if err != nil {
			return res, errors.Join(fmt.Errorf("%s: %w", c.name, err), stopAll())
		}
		pools[k] = p
	}
	run := func(d time.Duration) ([2]*load.Result, error) {
		var out [2]*load.Result
		var ls [2]*load.Load
		for k, p := range pools {
			l, err := load.Start(ctx, load.Options{URL: "http://" + p.addr + o.path, Clients: o.concurrency, KeepAlive: true, Duration: d})
			if err != nil {
				for _, l := range ls[:k] {
					l.Stop()
				}
				return out, err
			}
			ls[k] = l
		}
		for k, l := range ls {
			out[k] = l.Wait()
		}
		return out, ctx.Err()
	}
	if _, err := run(o.warmup); err != nil {
		return res, errors.Join(err, stopAll())
	}
	res, err := run(o.duration)
	return res, errors.Join(err, stopAll())
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
	return &pool{addr: fmt.Sprintf("127.0.0.1:%d", port), stop: stop}, nil
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
	return &pool{addr: addr, stop: func() error { close(quit); <-read; return cleanup() }}, nil
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
