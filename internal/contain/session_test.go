package contain

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/batonhq/baton/internal/procfs"
	"github.com/batonhq/baton/internal/testutil"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// The process-group strategy makes its process a child subreaper, for good:
// each scenario runs in a child process of the test binary.
func TestProcessGroup(t *testing.T) {
	for _, name := range []string{"setup", "kill", "orphan", "close", "session", "sweep", "shared"} {
		t.Run(name, func(t *testing.T) {
			testutil.CheckChildLeaks(t)
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), roleEnv+"=scenario", scenarioEnv+"="+name)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("scenario %s: %v\n%s", name, err, out)
			}
		})
	}
}

// scenario collects a child process's failures.
type scenario struct {
	failures []string
	s        *sessionStrategy
	ctx      context.Context
}

func (sc *scenario) errorf(format string, args ...any) {
	sc.failures = append(sc.failures, fmt.Sprintf(format, args...))
}

func runScenario(name string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := Setup(ctx, Options{Log: logrus.New()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, ok := st.(*sessionStrategy)
	if !ok {
		// Tests run outside a delegated cgroup; Setup must not take a
		// cgroup that is not delegated.
		fmt.Fprintf(os.Stderr, "Setup picked %s, want %s: %v\n", st.Kind(), KindProcessGroup, ok)
		return 1
	}
	sc := &scenario{s: s, ctx: ctx}
	scenarios := map[string]func(){
		"setup":   sc.setup,
		"kill":    sc.kill,
		"orphan":  sc.orphan,
		"close":   sc.close,
		"session": sc.session,
		"sweep":   sc.sweep,
		"shared":  sc.shared,
	}
	run, ok := scenarios[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "no scenario %q\n", name)
		return 1
	}
	run()
	// Whatever the scenario did, nothing of it may be left.
	if !eventually(10*time.Second, func() bool { return len(s.Orphans()) == 0 }) {
		sc.errorf("processes left: %v", s.Orphans())
	}
	if len(sc.failures) > 0 {
		fmt.Fprintln(os.Stderr, strings.Join(sc.failures, "\n"))
		return 1
	}
	return 0
}

func (sc *scenario) setup() {
	if sc.s.Kind() != KindProcessGroup {
		sc.errorf("Kind %q", sc.s.Kind())
	}
	v, err := unixPrctlGet()
	if err != nil || v != 1 {
		sc.errorf("not a child subreaper after Setup: %d, %v", v, err)
	}
	// Idempotent, as after an exec-in-place upgrade.
	if _, err := Setup(sc.ctx, Options{Log: logrus.New()}); err != nil {
		sc.errorf("second Setup: %v", err)
	}
	err = sc.s.Prepare(Limits{MemoryMax: 1 << 30, CPUWeight: 50})
	for _, want := range []string{"memory-max: cannot be enforced here: workers are contained by sessions only", "cpu-weight: cannot be enforced here"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			sc.errorf("Prepare = %v, want %q", err, want)
		}
	}
	if err := sc.s.Prepare(Limits{}); err != nil {
		sc.errorf("Prepare without limits: %v", err)
	}
}

// reapKilled reaps pid, now this process's child, and checks that SIGKILL
// ended it.
func (sc *scenario) reapKilled(what string, pid int) {
	ws, err := reap(pid)
	if err != nil || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		sc.errorf("%s %d: %v, %v; want killed by SIGKILL", what, pid, ws, err)
	}
}

func (sc *scenario) start(id, shape string, env ...string) (Cell, *worker) {
	c, err := sc.s.New(id, Limits{})
	if err != nil {
		sc.errorf("New: %v", err)
		return nil, nil
	}
	w, err := spawn(c, shape, 64, env...)
	if err != nil {
		sc.errorf("spawn: %v", err)
		return nil, nil
	}
	return c, w
}

// A worker forks a grandchild that leaves for a session of its own; both
// are the worker's, and Kill kills both.
func (sc *scenario) kill() {
	c, w := sc.start("w1", "stay")
	if c == nil {
		return
	}
	pid := w.cmd.Process.Pid
	if st, _ := procfs.ReadStat(pid); st.SID != pid {
		sc.errorf("worker %d is not a session leader (session %d)", pid, st.SID)
	}
	if st, _ := procfs.ReadStat(w.gc); st.SID != w.gc {
		sc.errorf("grandchild did not setsid")
	}
	if id, ok := sc.s.Owner(w.gc); !ok || id != "w1" {
		sc.errorf("Owner(grandchild) = %q, %v", id, ok)
	}
	if id, ok := sc.s.Owner(os.Getpid()); ok {
		sc.errorf("Owner(baton) = %q", id)
	}
	if o := sc.s.Orphans(); len(o) != 0 {
		sc.errorf("Orphans() = %v while the worker lives", o)
	}
	sc.memory(c, pid)
	if err := c.Kill(); err != nil {
		sc.errorf("Kill: %v", err)
	}
	_ = w.cmd.Wait()
	if !killedBy(w.cmd.ProcessState) {
		sc.errorf("worker: %v, want killed", w.cmd.ProcessState)
	}
	// Killed with its parent, the grandchild came to this subreaper.
	sc.reapKilled("grandchild", w.gc)
	if err := c.Close(sc.ctx); err != nil {
		sc.errorf("Close: %v", err)
	}
	if _, ok := sc.s.Owner(w.gc); ok {
		sc.errorf("Owner after Close")
	}
}

func (sc *scenario) memory(c Cell, pid int) {
	own, _ := procfs.RSS(pid)
	mem, err := c.Memory()
	if err != nil || mem < 64<<20 || own >= 64<<20 {
		sc.errorf("Memory() = %dMiB, %v; want the grandchild's 64MiB counted (the worker alone has %dMiB)", mem>>20, err, own>>20)
	}
}

// The grandchild is orphaned while its worker lives (its parent exits): it
// comes to baton, which still attributes it to its worker by EnvID.
func (sc *scenario) orphan() {
	c, w := sc.start("w2", "middle")
	if c == nil {
		return
	}
	if !eventually(10*time.Second, func() bool { return procfs.Parent(w.gc) == os.Getpid() }) {
		sc.errorf("orphan %d re-parented to %d, not to the subreaper %d", w.gc, procfs.Parent(w.gc), os.Getpid())
	}
	if o := sc.s.Orphans(); !slices.Equal(o, []int{w.gc}) {
		sc.errorf("Orphans() = %v, want [%d]", o, w.gc)
	}
	if id, ok := sc.s.Owner(w.gc); !ok || id != "w2" {
		sc.errorf("Owner(orphan) = %q, %v", id, ok)
	}
	sc.memory(c, w.cmd.Process.Pid)
	if err := c.Kill(); err != nil {
		sc.errorf("Kill: %v", err)
	}
	_ = w.cmd.Wait()
	sc.reapKilled("orphan", w.gc)
	if err := c.Close(sc.ctx); err != nil {
		sc.errorf("Close: %v", err)
	}
}

// The worker exits leaving its grandchild running: Close kills it.
func (sc *scenario) close() {
	c, w := sc.start("w3", "exit")
	if c == nil {
		return
	}
	if err := w.cmd.Wait(); err != nil {
		sc.errorf("worker: %v", err)
	}
	if id, ok := sc.s.Owner(w.gc); !ok || id != "w3" {
		sc.errorf("Owner(leftover) = %q, %v", id, ok)
	}
	if err := c.Close(sc.ctx); err != nil {
		sc.errorf("Close: %v", err)
	}
	sc.reapKilled("leftover", w.gc)
}

// A grandchild without EnvID that stays in its worker's session is still
// found, by session, after the worker exited.
func (sc *scenario) session() {
	c, w := sc.start("w4", "exit", gcSetsidEnv+"=0", noMarkerEnv+"=1")
	if c == nil {
		return
	}
	_ = w.cmd.Wait()
	if _, ok := procfs.Getenv(w.gc, EnvID); ok {
		sc.errorf("grandchild has %s", EnvID)
	}
	if id, ok := sc.s.Owner(w.gc); !ok || id != "w4" {
		sc.errorf("Owner(session member) = %q, %v", id, ok)
	}
	if err := c.Close(sc.ctx); err != nil {
		sc.errorf("Close: %v", err)
	}
	sc.reapKilled("session member", w.gc)
}

// After an upgrade, orphans of a worker no cell holds any more are swept.
func (sc *scenario) sweep() {
	c, w := sc.start("gone", "exit")
	if c == nil {
		return
	}
	_ = w.cmd.Wait()
	next, err := newSessionStrategy(logrus.New())
	if err != nil {
		sc.errorf("second strategy: %v", err)
		return
	}
	if id, ok := next.Owner(w.gc); ok {
		sc.errorf("new strategy attributes the orphan to %q", id)
	}
	swept, err := next.Sweep(sc.ctx)
	if err != nil || !slices.Equal(swept, []string{"gone"}) {
		sc.errorf("Sweep = %v, %v; want [gone]", swept, err)
	}
	sc.reapKilled("swept orphan", w.gc)
	if err := c.Close(sc.ctx); err != nil {
		sc.errorf("Close: %v", err)
	}
}

// Workers reaped before one look at baton's children share it: killing
// what a reload's exits left behind costs one look, not one per worker
// (quadratic at 1,000 workers). A worker reaped after the look is looked
// for afresh, and every leftover is killed either way.
func (sc *scenario) shared() {
	var cells []Cell
	var ws []*worker
	for _, id := range []string{"s1", "s2", "s3"} {
		c, w := sc.start(id, "exit")
		if c == nil {
			return
		}
		cells, ws = append(cells, c), append(ws, w)
	}
	for _, i := range []int{0, 1} {
		_ = ws[i].cmd.Wait()
		cells[i].Reaped()
	}
	looks := func() time.Time {
		sc.s.mu.Lock()
		defer sc.s.mu.Unlock()
		return sc.s.attributedAt
	}
	if err := cells[0].Kill(); err != nil {
		sc.errorf("Kill s1: %v", err)
	}
	first := looks()
	if err := cells[1].Kill(); err != nil {
		sc.errorf("Kill s2: %v", err)
	}
	if got := looks(); !got.Equal(first) {
		sc.errorf("the second worker reaped before the look looked again")
	}
	_ = ws[2].cmd.Wait()
	cells[2].Reaped()
	if err := cells[2].Kill(); err != nil {
		sc.errorf("Kill s3: %v", err)
	}
	if got := looks(); !got.After(first) {
		sc.errorf("a worker reaped after the look did not look again")
	}
	for i, w := range ws {
		sc.reapKilled("leftover", w.gc)
		if err := cells[i].Close(sc.ctx); err != nil {
			sc.errorf("Close: %v", err)
		}
	}
}

func unixPrctlGet() (int, error) {
	var v int32
	err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&v)), 0, 0, 0)
	return int(v), err
}
