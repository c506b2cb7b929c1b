package workers

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/testutil"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// The faults of issue 10, each reproduced against real processes: every
// test here failed on the supervisor before the state machine.

func withOutput(o *Options) { o.OnOutput = func(Line) {} }

// gunicorn says READY=1 before it imports the application: a broken
// deploy looks ready, then dies. The reload must fail, name the worker, its
// exit and its last words, and leave the old generation serving.
func TestReloadIntoWorkersThatDieAfterReadyFails(t *testing.T) {
	p := startPoolWith(t, &config.Config{Workers: 3}, nil, withOutput, "BATON_TEST_MODE=ready")
	before := pidsOf(p.waitFor("3 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 3 }))
	broken := reloadCfg(t, &config.Config{Workers: 3, SettleTime: time.Second, Command: []string{"/usr/bin/env", "BATON_TEST_MODE=broken-deploy", os.Args[0]}})
	err := p.s.Reload(context.Background(), broken, nil, "test")
	var f *WorkerFailure
	if !errors.Is(err, ErrReloadFailed) || !errors.As(err, &f) {
		t.Fatalf("reload into a deploy that dies after READY=1: %v", err)
	}
	if f.Generation != 2 || f.How != "exited with status 3" || !strings.Contains(f.When, "after READY=1") || f.LastLine != "ModuleNotFoundError: No module named 'app'" {
		t.Errorf("failure %+v", f)
	}
	if !strings.Contains(err.Error(), `last output: "ModuleNotFoundError: No module named 'app'"`) {
		t.Errorf("error text %q", err)
	}
	// The canary's old worker was never told to stop: the old generation
	// serves whole, the very same processes.
	snap := p.waitFor("generation 1 only", 20*time.Second, func(s Snapshot) bool { return !s.Reloading && s.Ready == 3 && len(s.Workers) == 3 })
	for pid, gen := range pidsOf(snap) {
		if _, old := before[pid]; !old || gen != 1 {
			t.Errorf("worker %d of generation %d: not one of the old workers %v", pid, gen, before)
		}
	}
	p.stop(Graceful)
}

// A new worker that dies in the settle window after the rollout fails it,
// and the slots go back to the old generation.
func TestDeathInTheSettleWindowFailsTheReload(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 2}, nil, "BATON_TEST_MODE=ready")
	p.waitFor("2 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 2 })
	// Slot 1 (the canary) lives; slot 2 is ready, then dies 200ms later,
	// inside the 1s settle window that follows the rollout.
	cmd := []string{"/bin/sh", "-c", `if [ "$BATON_WORKER" = 2 ]; then export BATON_TEST_MODE=ready-then-exit; fi; exec "$0"`, os.Args[0]}
	err := p.s.Reload(context.Background(), reloadCfg(t, &config.Config{Workers: 2, SettleTime: time.Second, Command: cmd}), nil, "test")
	var f *WorkerFailure
	if !errors.As(err, &f) || f.Slot != 2 || f.How != "exited with status 1" {
		t.Fatalf("got %v", err)
	}
	p.waitFor("both slots back on generation 1", 20*time.Second, func(s Snapshot) bool {
		if s.Reloading || s.Ready != 2 || len(s.Workers) != 2 {
			return false
		}
		for _, w := range s.Workers {
			if w.Generation != 1 {
				return false
			}
		}
		return true
	})
	p.stop(Graceful)
}

// A reload never reports success with fewer ready workers than configured.
func TestReloadSucceedsOnlyWithEveryWorkerReady(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 3, Surge: 3}, nil, "BATON_TEST_MODE=ready")
	p.waitFor("3 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 3 })
	if err := p.s.Reload(context.Background(), reloadCfg(t, &config.Config{Workers: 3, Surge: 3, SettleTime: 300 * time.Millisecond}), nil, "test"); err != nil {
		t.Fatal(err)
	}
	snap, _ := p.s.Snapshot()
	n := 0
	for _, w := range snap.Workers {
		if w.Generation == 2 && w.State == Ready {
			n++
		}
	}
	if n != 3 {
		t.Errorf("reload reported done with %d ready workers of generation 2: %+v", n, snap.Workers)
	}
	p.stop(Graceful)
}

// STOPPING=1 from a worker that then never exits: its slot gets a new
// worker at once, and graceful-timeout later it is killed.
func TestStoppingWorkerThatNeverExitsIsKilledAndReplaced(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 1, GracefulTimeout: 500 * time.Millisecond, TimeoutGrace: 100 * time.Millisecond}, nil, "BATON_TEST_MODE=stopping-forever")
	first := p.waitFor("a worker that said STOPPING=1", 20*time.Second, func(s Snapshot) bool {
		return len(s.Workers) > 0 && s.Workers[0].StopReason == StopSelf
	}).Workers[0].PID
	p.waitFor("it killed and a replacement running", 20*time.Second, func(s Snapshot) bool {
		for _, w := range s.Workers {
			if w.PID == first {
				return false
			}
		}
		return len(s.Workers) >= 1 && p.logged("still running 500ms after it said STOPPING=1; sending SIGKILL")
	})
	p.stop(Fast)
}

// A worker that exits 0 right after READY=1, over and over, is backed off
// like a crash and reported crash-looping, instead of respawning thousands
// of times. (The first worker serves a while: a pool that never did gives
// up instead, as TestCommandThatCannotStartGivesUp shows.)
func TestCleanExitLoopIsBackedOff(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 1}, nil, "BATON_TEST_MODE=ready-then-exit0", "BATON_TEST_OUT="+t.TempDir())
	snap := p.waitFor("crash-looping", 20*time.Second, func(s Snapshot) bool { return s.Failures[1] >= 4 })
	if !strings.Contains(snap.Status, "degraded: worker 1 crash-looping (exited with status 0)") {
		t.Errorf("status %q", snap.Status)
	}
	// Four failures take 100+200+400ms of backoff: a handful of spawns,
	// not a spin.
	if snap.Spawns > 8 {
		t.Errorf("%d spawns for %d failures", snap.Spawns, snap.Failures[1])
	}
	p.stop(Graceful)
}

// A command that can never start makes baton give up after StartAttempts
// tries of one slot, with the reason, so that systemd's Restart= and
// StartLimit*= take over.
func TestCommandThatCannotStartGivesUp(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"/nonexistent/app"}, "exec /nonexistent/app: no such file or directory"},
		{[]string{notExec}, "permission denied"},
		{[]string{"/bin/false"}, "exited with status 1"},
		// Exec readiness: "ready" for an instant, which does not count.
		{[]string{"/bin/true"}, "exited with status 0"},
	} {
		t.Run(filepath.Base(tc.cmd[0]), func(t *testing.T) {
			testutil.CheckFDLeaks(t)
			testutil.CheckChildLeaks(t)
			cfg := &config.Config{Workers: 2, Command: tc.cmd}
			if tc.cmd[0] == "/bin/true" {
				cfg.Readiness = config.ReadinessExec
			}
			if err := cfg.Finish(); err != nil {
				t.Fatal(err)
			}
			log, hook := logtest.NewNullLogger()
			s, err := New(Options{Config: cfg, RuntimeDir: t.TempDir(), Shim: os.Args[0], Log: log})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.Run(context.Background()) }()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				s.Stop(Fast)
				<-done
				t.Fatal("baton did not give up")
			}
			var se *StartError
			if !errors.Is(err, ErrNeverReady) || !errors.As(err, &se) || se.Attempts != StartAttempts || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run: %v, want ErrNeverReady naming %q", err, tc.want)
			}
			for _, e := range hook.AllEntries() {
				if e.Level == logrus.ErrorLevel && strings.HasPrefix(e.Message, "no worker ever became ready") {
					return
				}
			}
			t.Errorf("giving up was not logged")
		})
	}
}

// blockingNotifier is a NOTIFY_SOCKET nobody reads.
type blockingNotifier struct {
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (b *blockingNotifier) Send(string, ...int) error {
	b.once.Do(func() { close(b.entered) })
	<-b.release
	return nil
}

// A manager that does not read baton's notifications does not freeze
// baton: status, reloads and the workers' own notifications go on.
func TestUnreadNotifySocketDoesNotFreezeTheLoop(t *testing.T) {
	b := &blockingNotifier{entered: make(chan struct{}), release: make(chan struct{})}
	defer close(b.release)
	p := startPoolWith(t, &config.Config{Workers: 2, SettleTime: config.Off}, nil, func(o *Options) { o.Upward = b }, "BATON_TEST_MODE=ready")
	<-b.entered
	p.waitFor("2 ready with systemd not reading", 20*time.Second, func(s Snapshot) bool { return s.Ready == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.s.Reload(ctx, reloadCfg(t, &config.Config{Workers: 2, SettleTime: config.Off}), nil, "test"); err != nil {
		t.Fatal(err)
	}
	p.stop(Graceful)
}

// A supervisor that did not run for a while (here: its loop held by a
// handoff, as SIGSTOP would hold it) reads the heartbeats that arrived
// meanwhile before it judges any watchdog: healthy workers survive.
func TestStallDoesNotKillHealthyWorkers(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 4, WatchdogTimeout: 500 * time.Millisecond, TimeoutSignal: quiet}, nil, "BATON_TEST_MODE=heartbeat")
	before := pidsOf(p.waitFor("4 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 4 }))
	h, resume, err := p.s.PrepareHandoff(context.Background())
	if err != nil || h == nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the stall itself, not a wait for a condition
	resume()
	// Long enough for every watchdog to be judged several times over.
	time.Sleep(1500 * time.Millisecond)
	snap, _ := p.s.Snapshot()
	for pid := range before {
		if _, ok := pidsOf(snap)[pid]; !ok {
			t.Errorf("healthy worker %d was killed after the stall\n%s", pid, p.logLines())
		}
	}
	if p.logged("watchdog-timeout") {
		t.Errorf("a watchdog fired:\n%s", p.logLines())
	}
	p.stop(Fast)
}

// With exec readiness and no clock that needs it, a worker gets no
// NOTIFY_SOCKET, as systemd gives none to Type=exec services.
func TestExecReadinessSetsNoNotifySocket(t *testing.T) {
	out := t.TempDir()
	p := startPool(t, &config.Config{Workers: 1, Readiness: config.ReadinessExec}, nil, "BATON_TEST_MODE=report", "BATON_TEST_OUT="+out)
	p.waitFor("1 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 1 })
	if !testutil.Eventually(t, 10*time.Second, func() bool { _, err := os.Stat(filepath.Join(out, "1.json")); return err == nil }) {
		t.Fatal("no report")
	}
	b, _ := os.ReadFile(filepath.Join(out, "1.json"))
	if strings.Contains(string(b), "NOTIFY_SOCKET=") {
		t.Errorf("exec readiness got a NOTIFY_SOCKET: %s", b)
	}
	p.stop(Graceful)
}

// A boot clock that expires on a worker that serves without READY=1 says
// so, and suggests exec readiness.
func TestBootTimeoutSaysTheWorkerServesWithoutReady(t *testing.T) {
	sockets := bindLocal(t, "web")
	p := startPool(t, &config.Config{Workers: 1, BootTimeout: 1500 * time.Millisecond, TimeoutSignal: quiet}, sockets, "BATON_TEST_MODE=serve-silent")
	p.waitFor("the worker", 20*time.Second, func(s Snapshot) bool { return len(s.Workers) == 1 })
	c, err := net.Dial("tcp", strings.TrimPrefix(sockets[0].Addr, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.waitFor("the boot clock", 20*time.Second, func(Snapshot) bool { return p.logged("boot-timeout 1.5s expired") })
	if !p.logged("it is serving 1 connections on web without having sent READY=1") || !p.logged(`set readiness = "exec"`) {
		t.Errorf("log:\n%s", p.logLines())
	}
	p.stop(Fast)
}
