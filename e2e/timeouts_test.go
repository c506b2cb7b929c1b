package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A worker frozen with SIGSTOP misses its watchdog, gets SIGABRT, then
// SIGKILL after the grace, and is replaced; the others serve throughout.
func TestFrozenWorkerIsEscalatedAndReplaced(t *testing.T) {
	port := freePort(t)
	s := newService(t, "clock-frozen",
		fmt.Sprintf("Type=notify\nNotifyAccess=main\nKillMode=mixed\nExecStart=%s run -w 3 --watchdog-timeout 2s --timeout-grace 1s -- %s\n", batonBin, helloBin),
		fmt.Sprintf("ListenStream=127.0.0.1:%d\nFileDescriptorName=web\n", port))
	s.systemctl("start", s.name+".socket", s.name+".service")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	_, body := get(t, url)
	victim, _ := strconv.Atoi(pidOf(body))
	if err := syscall.Kill(victim, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(victim, syscall.SIGKILL)
	// kill() returns before the target stops; until it has, it may still
	// accept a connection that then dies with it.
	s.waitFor("the victim to be stopped", 10*time.Second, func() bool { return procState(victim) == "T" })

	l := startLoad(t, url, 4)
	s.waitFor("the frozen worker to be killed and replaced", 30*time.Second, func() bool {
		return strings.Contains(s.readLog(), fmt.Sprintf("pid=%d", victim)) &&
			strings.Contains(s.readLog(), "killed by signal SIGKILL") &&
			s.show("StatusText") == "3/3 workers ready, generation 1"
	})
	l.finish()
	log := s.readLog()
	for _, want := range []string{
		"watchdog-timeout 2s expired (no WATCHDOG=1 for",
		"sending SIGABRT, SIGKILL in 1s",
		"still running timeout-grace 1s after SIGABRT; sending SIGKILL",
		"clock=watchdog",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// A request longer than request-timeout on a worker whose heartbeat goes on
// is the request clock's, not the watchdog's; the Go example's goroutine
// dump from SIGABRT reaches the log.
func TestSlowRequestIsTheRequestClocksAndDumpsStacks(t *testing.T) {
	port := freePort(t)
	s := newService(t, "clock-request",
		fmt.Sprintf("Type=notify\nNotifyAccess=main\nKillMode=mixed\nExecStart=%s run -w 2 --watchdog-timeout 3s --request-timeout 1500ms --timeout-grace 3s -- %s\n", batonBin, helloBin),
		fmt.Sprintf("ListenStream=127.0.0.1:%d\nFileDescriptorName=web\n", port))
	s.systemctl("start", s.name+".socket", s.name+".service")
	// The request dies with its worker; its error is expected.
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/sleep?ms=20000", port))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a 20s request survived a 1.5s request-timeout: %d", resp.StatusCode)
	}
	s.waitFor("the request clock to fire and the worker to be replaced", 30*time.Second, func() bool {
		// Go's runtime exits with status 2 once it has dumped its stacks.
		return strings.Contains(s.readLog(), "exited with status 2 (request-timeout)") && s.show("StatusText") == "2/2 workers ready, generation 1"
	})
	log := s.readLog()
	for _, want := range []string{
		`request-timeout 1.5s expired (request \"1 GET /sleep?ms=20000\" running for`,
		"clock=request",
		"SIGABRT: abort",    // the Go runtime's dump...
		"goroutine ",        // ...with its goroutines
		"main.handler.func", // ...including the example's handler
		"(request-timeout)",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "watchdog-timeout 3s expired") {
		t.Errorf("the watchdog fired for a worker that kept beating:\n%s", log)
	}
}

// Slow boots: within boot-timeout, or extended with EXTEND_TIMEOUT_USEC=,
// the worker lives; beyond it, it is stopped.
func TestSlowBoot(t *testing.T) {
	for _, tc := range []struct {
		name, env, flags string
		killed           bool
	}{
		{"boot-within", "HELLO_BOOT_DELAY=1500ms", "--boot-timeout 5s", false},
		{"boot-extended", "HELLO_BOOT_DELAY=3500ms HELLO_BOOT_EXTEND=1", "--boot-timeout 1500ms", false},
		{"boot-beyond", "HELLO_BOOT_DELAY=60s", "--boot-timeout 1s --timeout-grace 1s", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newService(t, "clock-"+tc.name,
				fmt.Sprintf("Type=notify\nNotifyAccess=main\nKillMode=mixed\nTimeoutStartSec=infinity\nEnvironment=%s\nExecStart=%s run -w 1 -b web=tcp://127.0.0.1:0 %s -- %s\n", tc.env, batonBin, tc.flags, helloBin), "")
			s.systemctl("start", "--no-block", s.name+".service")
			if tc.killed {
				s.waitFor("the boot clock to fire", 30*time.Second, func() bool {
					return strings.Contains(s.readLog(), "boot-timeout 1s expired (no READY=1") && strings.Contains(s.readLog(), "respawning worker 1")
				})
				if st := s.show("ActiveState"); st != "activating" {
					t.Errorf("state %s", st)
				}
				return
			}
			s.waitFor("the service to become active", 30*time.Second, func() bool { return s.show("ActiveState") == "active" })
			if log := s.readLog(); strings.Contains(log, "expired") {
				t.Errorf("a worker within its boot time was stopped:\n%s", log)
			}
		})
	}
}

// baton itself frozen under WatchdogSec= is restarted by systemd, and the
// socket unit's socket serves again.
func TestFrozenBatonIsRestartedBySystemd(t *testing.T) {
	port := freePort(t)
	s := newService(t, "clock-baton",
		fmt.Sprintf("Type=notify\nNotifyAccess=main\nKillMode=mixed\nWatchdogSec=2\nRestart=on-failure\nRestartSec=100ms\nTimeoutStopSec=10\nExecStart=%s run -w 2 --graceful-timeout 3s --timeout-grace 1s -- %s\n", batonBin, helloBin),
		fmt.Sprintf("ListenStream=127.0.0.1:%d\nFileDescriptorName=web\n", port))
	s.systemctl("start", s.name+".socket", s.name+".service")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	// baton keeps itself alive through several watchdog intervals.
	first := s.show("MainPID")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if code, _ := get(t, url); code != 200 {
			t.Fatalf("status %d", code)
		}
		if pid := s.show("MainPID"); pid != first {
			t.Fatalf("baton restarted while healthy: %s then %s\n%s", first, pid, s.readLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	pid, _ := strconv.Atoi(first)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	s.waitFor("systemd to restart the frozen baton", 60*time.Second, func() bool {
		p := s.show("MainPID")
		return p != first && p != "0" && s.show("ActiveState") == "active"
	})
	if n, _ := strconv.Atoi(s.show("NRestarts")); n < 1 {
		t.Errorf("NRestarts %d", n)
	}
	if code, body := get(t, url); code != 200 || !strings.HasPrefix(body, "hello from worker") {
		t.Errorf("after restart: %d %q", code, body)
	}
}

// At start baton reads TimeoutStopUSec over D-Bus and warns when the drain
// cannot fit.
func TestStopBudgetIsCheckedAgainstTheUnit(t *testing.T) {
	s := newService(t, "clock-budget",
		fmt.Sprintf("Type=notify\nNotifyAccess=main\nKillMode=mixed\nTimeoutStopSec=5\nExecStart=%s run -w 1 -b web=tcp://127.0.0.1:0 -- %s\n", batonBin, helloBin), "")
	s.systemctl("start", s.name+".service")
	s.waitFor("the stop budget warning", 20*time.Second, func() bool {
		return strings.Contains(s.readLog(), "TimeoutStopSec=5s of clock-budget.service is shorter than graceful-timeout 30s plus timeout-grace 5s")
	})
	if !strings.Contains(s.readLog(), "set TimeoutStopSec=40s in [Service]") {
		t.Errorf("no fix named:\n%s", s.readLog())
	}
}

// procState is the state letter of /proc/PID/stat ("T" stopped), or "".
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || len(s) < i+3 {
		return ""
	}
	return s[i+2 : i+3]
}
