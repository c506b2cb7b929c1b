package workers

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/sdnotify"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"
)

// The state machine, table-tested without forking: a fake spawner and a
// fake clock, events handed to the supervisor directly, in milliseconds.

type fakeProc struct {
	pid      int
	spec     *spawnSpec
	signals  []syscall.Signal
	killed   int
	released bool
}

func (p *fakeProc) PID() int                        { return p.pid }
func (p *fakeProc) Signal(sig syscall.Signal) error { p.signals = append(p.signals, sig); return nil }
func (p *fakeProc) KillAll() error                  { p.killed++; return nil }
func (p *fakeProc) Memory() (int64, error)          { return 0, nil }
func (p *fakeProc) Release() error                  { p.released = true; return nil }

type fakeSpawner struct {
	next  int
	procs []*fakeProc
	fail  error
}

func (f *fakeSpawner) Spawn(spec *spawnSpec) (process, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	f.next++
	p := &fakeProc{pid: 10000 + f.next, spec: spec}
	f.procs = append(f.procs, p)
	return p, nil
}

func (f *fakeSpawner) Adopt(id string, pid int, onExit func(unix.WaitStatus)) (process, error) {
	return nil, errors.New("fake: no adoption")
}

// machine is a supervisor driven by hand.
type machine struct {
	t     *testing.T
	s     *Supervisor
	sp    *fakeSpawner
	clock time.Time
	hook  *logtest.Hook
	up    *recorder
}

func newMachine(t *testing.T, cfg *config.Config) *machine {
	t.Helper()
	if cfg.Command == nil {
		cfg.Command = []string{"/bin/app"}
	}
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	m := &machine{t: t, sp: &fakeSpawner{}, clock: time.Unix(1e9, 0), hook: hook, up: &recorder{}}
	s, err := New(Options{Config: cfg, RuntimeDir: t.TempDir(), Shim: "/bin/true", Log: log, spawner: m.sp, now: func() time.Time { return m.clock }})
	if err != nil {
		t.Fatal(err)
	}
	// Synchronous upward messages: the fake systemd sees them at once.
	s.upward, s.notifies = nil, true
	s.sendUpHook = func(m string) { _ = mUp(m) }
	t.Cleanup(func() { _ = s.Close() })
	m.s = s
	mUp = m.up.send
	for _, sl := range s.slots {
		s.start(sl)
	}
	m.settle()
	return m
}

var mUp func(string) error

func (r *recorder) send(m string) error { return r.Send(m) }

// settle hands the loop whatever the fakes queued, then publishes.
func (m *machine) settle() {
	for {
		select {
		case ev := <-m.s.events:
			m.s.handle(ev)
			continue
		default:
		}
		break
	}
	m.s.publish()
}

// advance moves the clock and fires what is due.
func (m *machine) advance(d time.Duration) {
	m.clock = m.clock.Add(d)
	m.s.fireAlarms(m.clock)
	m.settle()
}

func (m *machine) proc(w *worker) *fakeProc { return w.proc.(*fakeProc) }

func (m *machine) slotWorker(n int) *worker { return m.s.slots[n-1].w }

func (m *machine) notify(w *worker, text string) {
	m.t.Helper()
	msg, err := sdnotify.Parse([]byte(text))
	if err != nil {
		m.t.Fatal(err)
	}
	m.s.handle(notifyEvent{dg: &sdnotify.Datagram{PID: w.pid, Message: msg}, chain: []int{w.pid}})
	m.settle()
}

func (m *machine) exit(w *worker, code int) {
	m.s.handle(exitEvent{w: w, status: unix.WaitStatus(code << 8)})
	m.settle()
}

func (m *machine) killedBy(w *worker, sig syscall.Signal) {
	m.s.handle(exitEvent{w: w, status: unix.WaitStatus(sig)})
	m.settle()
}

func (m *machine) logged(sub string) bool {
	for _, e := range m.hook.AllEntries() {
		if strings.Contains(e.Message, sub) {
			return true
		}
	}
	return false
}

func TestStateTransitionsArmOneClockEach(t *testing.T) {
	m := newMachine(t, &config.Config{Workers: 1, BootTimeout: 10 * time.Second, WatchdogTimeout: 2 * time.Second, GracefulTimeout: 5 * time.Second, TimeoutGrace: time.Second})
	w := m.slotWorker(1)
	steps := []struct {
		name  string
		do    func()
		state State
		due   time.Duration // from now; 0: none
	}{
		{"spawned: the boot clock", func() {}, Starting, 10 * time.Second},
		{"READY=1: the watchdog", func() { m.notify(w, "READY=1") }, Ready, 2 * time.Second},
		{"a heartbeat leaves the alarm lazy", func() { m.advance(time.Second); m.notify(w, "WATCHDOG=1") }, Ready, time.Second},
		{"the alarm re-arms from the heartbeat", func() { m.advance(time.Second) }, Ready, time.Second},
		{"silence: timeout-signal, timeout-grace", func() { m.advance(time.Second) }, Signalled, time.Second},
		{"timeout-grace over: SIGKILL and a reminder", func() { m.advance(time.Second) }, Killed, killWait},
		{"reaped: no clock", func() { m.killedBy(w, syscall.SIGKILL) }, Exited, 0},
	}
	for _, st := range steps {
		st.do()
		if w.state != st.state {
			t.Fatalf("%s: state %s, want %s", st.name, w.state, st.state)
		}
		armed := w.alarm.index >= 0
		if (st.due == 0) == armed {
			t.Fatalf("%s: armed %v, want a clock %v", st.name, armed, st.due)
		}
		if armed && w.alarm.at.Sub(m.clock) != st.due {
			t.Fatalf("%s: alarm in %s, want %s", st.name, w.alarm.at.Sub(m.clock), st.due)
		}
	}
	p := m.proc(w)
	if fmt.Sprint(p.signals) != "[aborted]" || p.killed < 1 || !p.released {
		t.Errorf("signals %v, killed %d, released %v", p.signals, p.killed, p.released)
	}
	if w.reason != StopWatchdog || !w.reason.Failure() {
		t.Errorf("reason %v", w.reason)
	}
}

func TestStopReasonsAreTypedAndClassified(t *testing.T) {
	for _, tc := range []struct {
		r                StopReason
		failure, planned bool
		metric           string
	}{
		{StopPool, false, true, "stopped"},
		{StopReplaced, false, true, "replaced"},
		{StopRecycled, false, true, "recycle"},
		{StopScaledDown, false, true, "scaled_down"},
		{StopCancelled, false, true, "cancelled"},
		{StopSelf, false, false, "self"},
		{StopBootTimeout, true, false, "boot_timeout"},
		{StopWatchdog, true, false, "watchdog"},
		{StopRequestTimeout, true, false, "request_timeout"},
	} {
		if tc.r.Failure() != tc.failure || tc.r.Planned() != tc.planned || tc.r.Metric() != tc.metric {
			t.Errorf("%d: failure %v planned %v metric %q", tc.r, tc.r.Failure(), tc.r.Planned(), tc.r.Metric())
		}
	}
}

func TestExitsAndTheirSlots(t *testing.T) {
	for _, tc := range []struct {
		name       string
		readyFor   time.Duration // -1: never ready
		code       int
		failures   int
		respawnIn  time.Duration
		crashLoops bool
	}{
		{"crash before ready", -1, 1, 1, backoffBase, false},
		{"clean exit right after ready", 10 * time.Millisecond, 0, 1, backoffBase, false},
		{"crash right after ready", 10 * time.Millisecond, 2, 1, backoffBase, false},
		{"clean exit after a long life", stableAfter, 0, 0, 0, false},
		{"crash after a long life", stableAfter, 2, 1, backoffBase, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t, &config.Config{Workers: 1})
			w := m.slotWorker(1)
			if tc.readyFor >= 0 {
				m.notify(w, "READY=1")
				m.advance(tc.readyFor)
			}
			m.exit(w, tc.code)
			sl := m.s.slots[0]
			if sl.failures != tc.failures || sl.w != nil {
				t.Fatalf("failures %d, worker %v", sl.failures, sl.w)
			}
			if got := sl.alarm.at.Sub(m.clock); sl.alarm.index < 0 || got != tc.respawnIn {
				t.Fatalf("respawn in %s (armed %v), want %s", got, sl.alarm.index >= 0, tc.respawnIn)
			}
			m.advance(tc.respawnIn)
			if sl.w == nil || sl.w == w || len(m.sp.procs) != 2 {
				t.Fatalf("not respawned")
			}
		})
	}
}

func TestCrashLoopStatusAndBackoffGrow(t *testing.T) {
	m := newMachine(t, &config.Config{Workers: 1})
	m.notify(m.slotWorker(1), "READY=1")
	m.advance(startStable) // the pool counts as having been ready
	for i := 1; i <= 6; i++ {
		w := m.slotWorker(1)
		if i > 1 {
			m.notify(w, "READY=1")
		}
		m.exit(w, 0)
		if got, want := m.s.slots[0].alarm.at.Sub(m.clock), backoff(i); got != want {
			t.Fatalf("exit %d: respawn in %s, want %s", i, got, want)
		}
		m.advance(backoff(i))
	}
	if !strings.Contains(m.s.statusLine(), "degraded: worker 1 crash-looping (exited with status 0)") {
		t.Errorf("status %q", m.s.statusLine())
	}
	if m.s.phase != phaseRunning {
		t.Errorf("a pool that was ready gave up")
	}
}

func TestNeverReadyGivesUpAfterStartAttempts(t *testing.T) {
	m := newMachine(t, &config.Config{Workers: 2})
	for i := 1; i <= StartAttempts; i++ {
		m.exit(m.slotWorker(1), 127)
		if i < StartAttempts {
			m.advance(backoff(i))
		}
	}
	var se *StartError
	if m.s.phase != phaseStopping || !errors.As(m.s.runErr, &se) || se.Attempts != StartAttempts || se.Last.How != "exited with status 127" {
		t.Fatalf("phase %v, err %v", m.s.phase, m.s.runErr)
	}
	// Slot 2's worker, still booting, is told to stop.
	if p := m.proc(m.slotWorker(2)); fmt.Sprint(p.signals) != "[terminated]" {
		t.Errorf("slot 2 signals %v", p.signals)
	}
}

func TestStoppingItselfFreesTheSlotAndIsKilledOnTime(t *testing.T) {
	m := newMachine(t, &config.Config{Workers: 1, GracefulTimeout: 3 * time.Second, TimeoutGrace: time.Second})
	w := m.slotWorker(1)
	m.notify(w, "READY=1")
	m.advance(stableAfter)
	m.notify(w, "STOPPING=1")
	if w.state != Stopping || w.reason != StopSelf || m.s.slots[0].w != nil || m.s.nReady != 0 {
		t.Fatalf("state %s reason %v", w.state, w.reason)
	}
	m.advance(0)
	if m.slotWorker(1) == nil {
		t.Fatalf("slot not refilled at once")
	}
	m.advance(3 * time.Second)
	if w.state != Killed || m.proc(w).killed != 1 || !m.logged("still running 3s after it said STOPPING=1; sending SIGKILL") {
		t.Fatalf("state %s", w.state)
	}
	m.killedBy(w, syscall.SIGKILL)
	if m.s.slots[0].failures != 0 {
		t.Errorf("a long-lived worker that announced its exit counted a failure")
	}
}

func TestExtendTimeoutMovesTheBootClock(t *testing.T) {
	m := newMachine(t, &config.Config{Workers: 1, BootTimeout: time.Second})
	w := m.slotWorker(1)
	m.advance(500 * time.Millisecond)
	m.notify(w, "EXTEND_TIMEOUT_USEC=5000000")
	m.advance(time.Second)
	if w.state != Starting {
		t.Fatalf("boot clock fired despite the extension: %s", w.state)
	}
	m.advance(4 * time.Second)
	if w.state != Signalled || w.reason != StopBootTimeout {
		t.Fatalf("state %s reason %v", w.state, w.reason)
	}
}

func TestRequestClockFollowsTheOldestRequest(t *testing.T) {
	m := newMachine(t, &config.Config{Workers: 1, RequestTimeout: 2 * time.Second})
	w := m.slotWorker(1)
	m.notify(w, "READY=1")
	m.notify(w, FieldRequestBegin+"=a")
	m.advance(time.Second)
	m.notify(w, FieldRequestBegin+"=b")
	m.notify(w, FieldRequestEnd+"=a")
	m.advance(1500 * time.Millisecond) // a would have expired; b has 0.5s left
	if w.state != Ready {
		t.Fatalf("state %s", w.state)
	}
	m.advance(600 * time.Millisecond)
	if w.state != Signalled || w.reason != StopRequestTimeout || !m.logged(`request "b" running for 2.1s`) {
		t.Fatalf("state %s reason %v", w.state, w.reason)
	}
}

func TestStallGivesClocksGrace(t *testing.T) {
	m := newMachine(t, &config.Config{Workers: 1, WatchdogTimeout: time.Second})
	w := m.slotWorker(1)
	m.notify(w, "READY=1")
	// The loop did not run for 5s; the watchdog is long overdue.
	m.clock = m.clock.Add(5 * time.Second)
	m.s.stalled(5*time.Second, m.clock)
	m.s.fireAlarms(m.clock)
	if w.state != Ready {
		t.Fatalf("judged during the stall's grace: %s", w.state)
	}
	// Its heartbeats, held up by the stall, arrive within the grace, and
	// go on.
	for i := 0; i < 8; i++ {
		m.advance(500 * time.Millisecond)
		m.notify(w, "WATCHDOG=1")
	}
	if w.state != Ready {
		t.Fatalf("a worker that pinged after the stall was judged: %s", w.state)
	}
	// The grace is not a pardon: silence after it is judged as ever.
	m.advance(1100 * time.Millisecond)
	if w.state != Signalled || w.reason != StopWatchdog {
		t.Fatalf("silent after the grace, still %s", w.state)
	}
}

func TestMainPIDOutsideTheWorkerIsRefused(t *testing.T) {
	m := newMachine(t, &config.Config{Workers: 1})
	w := m.slotWorker(1)
	m.notify(w, "READY=1\nMAINPID=1")
	if w.mainPID != 0 || m.s.dropped[dropMainPID] != 1 || !m.logged("named pid 1 as its main process, which is neither the worker nor one of its descendants: refused") {
		t.Errorf("mainPID %d dropped %v", w.mainPID, m.s.dropped)
	}
}

func TestScaleLimits(t *testing.T) {
	m := newMachine(t, &config.Config{Workers: 2, MaxWorkers: 4})
	for _, tc := range []struct {
		delta int
		ok    bool
	}{
		{0, false}, {3, false}, {int(^uint(0) >> 1), false}, {-2, false}, {-int(^uint(0)>>1) - 1, false}, {2, true}, {-3, true},
	} {
		err := m.s.scale(tc.delta)
		if (err == nil) != tc.ok {
			t.Errorf("scale %d: %v", tc.delta, err)
		}
		if !tc.ok && tc.delta != 0 && !errors.Is(err, ErrScaleLimit) {
			t.Errorf("scale %d: %v is not ErrScaleLimit", tc.delta, err)
		}
	}
	if m.s.cfg.Workers != 1 || len(m.s.slots) != 1 {
		t.Errorf("workers %d slots %d", m.s.cfg.Workers, len(m.s.slots))
	}
}

func TestRolloutHoldsTheCanaryForSettleTime(t *testing.T) {
	m := newMachine(t, &config.Config{Workers: 2, SettleTime: 2 * time.Second})
	olds := []*worker{m.slotWorker(1), m.slotWorker(2)}
	for _, w := range olds {
		m.notify(w, "READY=1")
	}
	cfg := &config.Config{Workers: 2, Command: []string{"/bin/app2"}, SettleTime: 2 * time.Second}
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	reply := make(chan error, 1)
	m.s.handle(&reloadRequest{cfg: cfg, reason: "test", waiters: []chan error{reply}})
	canary := m.s.slots[0].next
	m.notify(canary, "READY=1")
	if m.proc(olds[0]).signals != nil || m.s.slots[1].next != nil {
		t.Fatalf("the canary's old worker was stopped, or the rest rolled, before settle-time")
	}
	m.advance(2 * time.Second)
	if fmt.Sprint(m.proc(olds[0]).signals) != "[terminated]" || m.s.slots[1].next == nil {
		t.Fatalf("settle-time over, but the rollout did not go on")
	}
	next := m.s.slots[1].next
	m.notify(next, "READY=1")
	if m.s.rollout == nil || m.s.rollout.phase != phaseSettling {
		t.Fatalf("not settling")
	}
	// The new worker dies in the settle window: the reload fails, and
	// slot 1, already handed to generation 2, is rolled back.
	m.exit(next, 3)
	if m.s.gen != 1 || m.s.rollout == nil || !m.s.rollout.rollback {
		t.Fatalf("gen %d rollout %+v: want a rollback to generation 1", m.s.gen, m.s.rollout)
	}
	select {
	case err := <-reply:
		t.Fatalf("answered before the old generation was back: %v", err)
	default:
	}
	m.advance(0)
	m.notify(m.s.slots[0].next, "READY=1")
	select {
	case err := <-reply:
		var f *WorkerFailure
		if !errors.As(err, &f) || f.Slot != 2 || f.How != "exited with status 3" {
			t.Fatalf("reload: %v", err)
		}
	default:
		t.Fatal("no answer once rolled back")
	}
	if m.s.rollout != nil || m.s.slots[0].w.gen != 1 {
		t.Errorf("not rolled back: %+v", m.s.slots[0].w)
	}
}

func TestReloadIsAnnouncedOnlyOnceStartedAndExtendedWhileItRuns(t *testing.T) {
	m := newMachine(t, &config.Config{Workers: 1, BootTimeout: 10 * time.Minute})
	cfg := &config.Config{Workers: 1, Command: []string{"/bin/app2"}, BootTimeout: 10 * time.Minute}
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	// Before the pool ever said READY=1: no RELOADING=1, no READY=1 at its
	// end, which systemd would take for the start.
	m.s.handle(&reloadRequest{cfg: cfg, reason: "early", waiters: []chan error{make(chan error, 1)}})
	if m.up.has("RELOADING=1") {
		t.Fatalf("a reload before the start was announced: %v", m.up.msgs)
	}
	m.exit(m.s.slots[0].next, 1)
	if m.up.has("READY=1") {
		t.Fatalf("a failed early reload sent READY=1: %v", m.up.msgs)
	}
	// Started: a reload is announced and its timeout extended while it
	// runs (a slow boot), then READY=1 ends it.
	m.advance(backoff(1))
	m.notify(m.slotWorker(1), "READY=1")
	if !m.up.has("READY=1") {
		t.Fatal("no start")
	}
	m.up.msgs = nil
	reply := make(chan error, 1)
	m.s.handle(&reloadRequest{cfg: cfg, reason: "late", waiters: []chan error{reply}})
	m.advance(0)
	if !m.up.has("RELOADING=1\nMONOTONIC_USEC=") || !m.up.has("EXTEND_TIMEOUT_USEC=30000000") {
		t.Fatalf("upward %q", m.up.msgs)
	}
	m.up.msgs = nil
	m.advance(time.Minute)
	if !m.up.has("EXTEND_TIMEOUT_USEC=30000000") {
		t.Fatalf("no extension while the new worker boots: %q", m.up.msgs)
	}
	m.exit(m.s.slots[0].next, 1)
	if err := <-reply; err == nil || !m.up.has("READY=1") {
		t.Fatalf("reload %v, upward %q", err, m.up.msgs)
	}
	m.up.msgs = nil
	m.advance(time.Minute)
	if m.up.has("EXTEND_TIMEOUT_USEC") {
		t.Errorf("extensions after the reload ended: %q", m.up.msgs)
	}
}

func TestRefusedReloadShowsInStatus(t *testing.T) {
	m := newMachine(t, &config.Config{Workers: 1})
	m.s.handle(refusedEvent{errors.New("app.toml:3:1: workerz: unknown key")})
	if line := m.s.statusLine(); !strings.Contains(line, "last reload failed: refused: app.toml:3:1: workerz: unknown key") {
		t.Errorf("status %q", line)
	}
	if snap := m.s.snapshot(); len(snap.Reloads) != 1 || snap.ReloadsFailed != 1 {
		t.Errorf("reloads %+v", snap.Reloads)
	}
}
