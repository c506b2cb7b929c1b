package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A .socket unit and a Type=notify service running baton with 4 example
// workers: every worker answers through the socket, systemctl shows baton's
// STATUS=, and stopping lets an in-flight request finish.
func TestSocketUnitFourWorkersAndGracefulStop(t *testing.T) {
	port := freePort(t)
	s := newService(t, "core-socket",
		fmt.Sprintf("Type=notify\nNotifyAccess=main\nKillMode=mixed\nTimeoutStopSec=60\nExecStart=%s run -w 4 --graceful-timeout 30s -- %s\n", batonBin, helloBin),
		fmt.Sprintf("ListenStream=127.0.0.1:%d\nFileDescriptorName=web\n", port))
	s.systemctl("start", s.name+".socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)

	// The first connection starts the service through the socket.
	pids := map[string]bool{}
	for i := 0; i < 2000 && len(pids) < 4; i++ {
		code, body := get(t, url)
		if code != 200 || !strings.HasPrefix(body, "hello from worker") {
			t.Fatalf("GET / = %d %q", code, body)
		}
		pids[pidOf(body)] = true
	}
	if len(pids) != 4 {
		t.Fatalf("answered by %d distinct workers, want 4: %v", len(pids), pids)
	}
	// A worker answers as soon as it accepts, which it does right after
	// sending READY=1: baton may not have read that yet.
	s.waitFor("baton to count every worker ready", 20*time.Second, func() bool {
		return s.show("StatusText") == "4/4 workers ready, generation 1"
	})
	status := s.systemctl("status", s.name+".service")
	if !strings.Contains(status, `Status: "4/4 workers ready, generation 1"`) {
		t.Errorf("systemctl status does not show baton's STATUS=:\n%s", status)
	}
	mainPID := s.show("MainPID")
	for p := range pids {
		if p == mainPID {
			t.Errorf("a worker answered with baton's own pid %s", p)
		}
	}

	// A slow request is in flight (its headers arrived, so a worker holds
	// it) when the stop begins; it must finish with 200 and its whole body.
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /sleep?ms=1500&flush=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() {
		_, err := mgr.Systemctl(ctx(t), "stop", s.name+".service")
		stopped <- err
	}()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(string(body), "slept 1500ms") {
		t.Fatalf("in-flight request during stop: %d %q %v", resp.StatusCode, body, err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("systemctl stop did not return")
	}
	if st := s.show("ActiveState"); st != "inactive" {
		t.Errorf("after stop: %s (result %s)", st, s.show("Result"))
	}
	if log := s.readLog(); !strings.Contains(log, "graceful stop: stopping 4 workers") || !strings.Contains(log, "all workers stopped") {
		t.Errorf("log:\n%s", log)
	}
}

// A worker that is a shell script using the real systemd-notify becomes
// ready, and baton reports READY=1 upwards once both are.
func TestShellWorkerWithSystemdNotify(t *testing.T) {
	s := newService(t, "core-shell",
		fmt.Sprintf("Type=notify\nNotifyAccess=main\nKillMode=mixed\nTimeoutStartSec=60\nExecStart=%s run -w 2 -- /bin/sh -c 'systemd-notify --ready --status=\"shell worker $BATON_WORKER\"; exec sleep infinity'\n", batonBin), "")
	// Type=notify: start returns only after baton's READY=1.
	s.systemctl("start", s.name+".service")
	if st := s.show("StatusText"); st != "2/2 workers ready, generation 1" {
		t.Errorf("StatusText %q", st)
	}
	if !strings.Contains(s.readLog(), "worker 2 ready") {
		t.Errorf("log:\n%s", s.readLog())
	}
}

// A command that can never serve makes baton give up with the reason, so
// that systemd's Restart= and StartLimit*= take over, instead of spinning.
func TestNeverReadyPoolExitsForSystemdToRestart(t *testing.T) {
	s := newService(t, "core-never",
		fmt.Sprintf("Type=notify\nNotifyAccess=main\nRestart=on-failure\nRestartSec=100ms\nExecStart=%s run -w 2 -- /bin/sh -c 'echo no database; exit 3'\n\n[Unit]\nStartLimitIntervalSec=60\nStartLimitBurst=2\n", batonBin), "")
	s.systemctl("start", "--no-block", s.name+".service")
	s.waitFor("systemd to give up after its start limit", 60*time.Second, func() bool {
		return s.show("ActiveState") == "failed"
	})
	if r := s.show("Result"); r != "start-limit-hit" && r != "exit-code" {
		t.Errorf("Result=%s", r)
	}
	if n, _ := strconv.Atoi(s.show("NRestarts")); n < 1 {
		t.Errorf("NRestarts=%d: systemd's Restart= did not take over", n)
	}
	log := s.readLog()
	if !regexp.MustCompile(`baton: no worker ever became ready: 5 attempts in a row failed, the last: worker \d of generation 1 \(pid \d+\) exited with status 3 .*\(last output: "no database"\)`).MatchString(log) {
		t.Errorf("the reason is not in the log:\n%s", log)
	}
}

var respawnRE = regexp.MustCompile(`respawning worker 1 in ([0-9.]+m?s)`)

// A pool that served and then crash-loops is respawned with growing
// delays; baton stays up (same main pid), says so in STATUS=, and does not
// leak fds.
func TestCrashLoopBacksOff(t *testing.T) {
	s := newService(t, "core-crash",
		fmt.Sprintf("Type=notify\nNotifyAccess=main\nExecStart=%s run -w 2 --readiness exec -- /bin/sh -c 'sleep 1.2; exit 3'\n", batonBin), "")
	s.systemctl("start", s.name+".service")
	s.waitFor("baton to report crash-looping", 60*time.Second, func() bool {
		return strings.Contains(s.show("StatusText"), "crash-looping (exited with status 3)")
	})
	pid := s.show("MainPID")
	fdsThen := countFDs(t, pid)
	s.waitFor("six respawns of worker 1", 60*time.Second, func() bool {
		return len(respawnRE.FindAllString(s.readLog(), -1)) >= 6
	})
	var delays []time.Duration
	for _, m := range respawnRE.FindAllStringSubmatch(s.readLog(), -1) {
		d, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatal(err)
		}
		delays = append(delays, d)
	}
	for i := 1; i < len(delays); i++ {
		if delays[i] <= delays[i-1] {
			t.Errorf("respawn delays do not grow: %v", delays)
			break
		}
	}
	if now := s.show("MainPID"); now != pid {
		t.Errorf("baton restarted: main pid %s then %s", pid, now)
	}
	if fdsNow := countFDs(t, pid); fdsNow > fdsThen {
		t.Errorf("fds grew from %d to %d while crash-looping", fdsThen, fdsNow)
	}
}

func countFDs(t *testing.T, pid string) int {
	t.Helper()
	if _, err := strconv.Atoi(pid); err != nil {
		t.Fatalf("pid %q", pid)
	}
	ents, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
