package workers

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/config"
)

// quiet makes the ladder's first signal SIGTERM, which the test worker
// handles, so the logs hold no stack dumps.
var quiet = config.Signal(syscall.SIGTERM)

func TestWatchdogEscalatesWhenHeartbeatsStop(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 1, WatchdogTimeout: 300 * time.Millisecond, TimeoutSignal: quiet}, nil,
		"BATON_TEST_MODE=heartbeat", "BATON_TEST_HEARTBEATS=4")
	p.waitFor("a watchdog failure", 20*time.Second, func(s Snapshot) bool { return s.Failures[1] >= 1 })
	var entry string
	for _, e := range p.hook.AllEntries() {
		if e.Data["clock"] == "watchdog" && strings.Contains(e.Message, "watchdog-timeout 300ms expired (no WATCHDOG=1 for") {
			entry = e.Message
			for _, k := range []string{"worker", "pid", "generation", "age", "overdue", "limit"} {
				if _, ok := e.Data[k]; !ok {
					t.Errorf("ladder log line lacks %q: %v", k, e.Data)
				}
			}
		}
	}
	if entry == "" || !strings.Contains(entry, "sending SIGTERM") {
		t.Errorf("log:\n%s", p.logLines())
	}
	// The worker was ready and heartbeating for a while: not a boot failure.
	if p.logged("boot-timeout") {
		t.Errorf("wrong clock:\n%s", p.logLines())
	}
	p.stop(Fast)
}

func TestHeartbeatingWorkerIsLeftAlone(t *testing.T) {
	// Heartbeats every 50ms against a 1s watchdog: only a stalled machine
	// could miss twenty in a row.
	p := startPool(t, &config.Config{Workers: 1, WatchdogTimeout: time.Second, TimeoutSignal: quiet}, nil, "BATON_TEST_MODE=heartbeat")
	p.waitFor("ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 1 })
	// Several watchdog intervals pass; the condition is that nothing fires.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if snap, _ := p.s.Snapshot(); snap.Failures[1] != 0 || snap.Ready != 1 {
			t.Fatalf("heartbeating worker was escalated:\n%s", p.logLines())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop(Graceful)
}

func TestRequestClockIsNotTheWatchdog(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 1, WatchdogTimeout: time.Second, RequestTimeout: 300 * time.Millisecond, TimeoutSignal: quiet}, nil,
		"BATON_TEST_MODE=heartbeat", "BATON_TEST_REQUEST=GET /slow")
	p.waitFor("a request-timeout failure", 20*time.Second, func(s Snapshot) bool { return s.Failures[1] >= 1 })
	if !p.logged(`worker 1 request-timeout 300ms expired (request "GET /slow" running for`) || p.logged("watchdog-timeout") {
		t.Errorf("log:\n%s", p.logLines())
	}
	p.stop(Fast)
}

func TestWatchdogTriggerEscalatesAtOnce(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 1, TimeoutSignal: quiet}, nil, "BATON_TEST_MODE=trigger")
	p.waitFor("a triggered failure", 20*time.Second, func(s Snapshot) bool { return s.Failures[1] >= 1 })
	if !p.logged("worker sent WATCHDOG=trigger") {
		t.Errorf("log:\n%s", p.logLines())
	}
	p.stop(Fast)
}

func TestExtendTimeoutUSecExtendsBoot(t *testing.T) {
	// The worker asks for 10s at once and is ready after 2.5s: well past
	// the 1.5s boot-timeout, which leaves it ample time to start even on a
	// loaded machine.
	p := startPool(t, &config.Config{Workers: 1, BootTimeout: 1500 * time.Millisecond, TimeoutSignal: quiet}, nil, "BATON_TEST_MODE=extend-boot")
	snap := p.waitFor("ready after 2.5s despite a 1.5s boot-timeout", 20*time.Second, func(s Snapshot) bool { return s.Ready == 1 })
	if snap.Failures[1] != 0 || p.logged("boot-timeout 1.5s expired") || !p.logged("extended its boot-timeout to 10s") {
		t.Errorf("log:\n%s", p.logLines())
	}
	p.stop(Graceful)
}

func TestLadderKillsWhatIgnoresTheTimeoutSignal(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 1, WatchdogTimeout: 200 * time.Millisecond, TimeoutSignal: quiet, TimeoutGrace: 200 * time.Millisecond}, nil,
		"BATON_TEST_MODE=ignore-term")
	p.waitFor("a killed worker", 20*time.Second, func(s Snapshot) bool { return p.logged("killed by signal SIGKILL") })
	if !p.logged("worker 1 still running timeout-grace 200ms after SIGTERM; sending SIGKILL") {
		t.Errorf("log:\n%s", p.logLines())
	}
	p.stop(Fast)
}

func TestOwnWatchdogPingsOnlyWhileHealthy(t *testing.T) {
	testWatchdog := func(o *Options) { o.Watchdog = 100 * time.Millisecond }
	p := startPoolWith(t, &config.Config{Workers: 1}, nil, testWatchdog, "BATON_TEST_MODE=ready-then-exit")
	// Ready, then the worker exits and its slot waits out the backoff: no
	// worker ready or booting, so baton must withhold its heartbeat.
	p.waitFor("withheld heartbeat", 20*time.Second, func(Snapshot) bool { return p.logged("withholding WATCHDOG=1") })
	if !p.up.has("WATCHDOG=1") {
		t.Errorf("no WATCHDOG=1 sent while healthy: %v", p.up.msgs)
	}
	p.stop(Fast)
}

func TestStopAsksSystemdForTheDrainBudget(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 1, GracefulTimeout: 20 * time.Second}, nil, "BATON_TEST_MODE=ready")
	p.waitFor("ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 1 })
	p.stop(Graceful)
	// 20s graceful-timeout plus the 5s margin.
	if !p.up.has("STOPPING=1\nEXTEND_TIMEOUT_USEC=25000000") {
		t.Errorf("upward: %q", p.up.msgs)
	}
}
