package workers

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/config"
)

func reloadCfg(t *testing.T, c *config.Config) *config.Config {
	t.Helper()
	if c.Command == nil {
		c.Command = []string{os.Args[0]}
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	return c
}

func pidsOf(s Snapshot) map[int]int {
	m := map[int]int{}
	for _, w := range s.Workers {
		m[w.PID] = w.Generation
	}
	return m
}

// watchReady samples the ready count until stop and returns the minimum.
func watchReady(p *pool, stop <-chan struct{}) <-chan int {
	out := make(chan int, 1)
	go func() {
		low := int(^uint(0) >> 1)
		for {
			select {
			case <-stop:
				out <- low
				return
			default:
			}
			if snap, ok := p.s.Snapshot(); ok && snap.Ready < low {
				low = snap.Ready
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return out
}

func TestReloadRollsEveryWorkerWithoutDroppingReadiness(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 3, Surge: 2}, nil, "BATON_TEST_MODE=ready")
	before := pidsOf(p.waitFor("3 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 3 }))
	stop := make(chan struct{})
	low := watchReady(p, stop)
	err := p.s.Reload(context.Background(), reloadCfg(t, &config.Config{Workers: 3, Surge: 2}), nil, "test")
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	if l := <-low; l < 3 {
		t.Errorf("ready workers fell to %d during the reload", l)
	}
	after := p.waitFor("generation 2 only", 20*time.Second, func(s Snapshot) bool {
		if s.Generation != 2 || s.Ready != 3 || len(s.Workers) != 3 {
			return false
		}
		for _, w := range s.Workers {
			if w.Generation != 2 {
				return false
			}
		}
		return true
	})
	for pid := range pidsOf(after) {
		if _, old := before[pid]; old {
			t.Errorf("pid %d survived the reload", pid)
		}
	}
	if !p.up.has("RELOADING=1\nMONOTONIC_USEC=") || !p.logged("canary worker 1 of generation 2 is ready") || !p.logged("reload done: generation 2 serves") {
		t.Errorf("upward %q\nlog:\n%s", p.up.msgs, p.logLines())
	}
	if len(after.Reloads) != 1 || after.Reloads[0].Err != "" {
		t.Errorf("reloads %+v", after.Reloads)
	}
	p.stop(Graceful)
}

func TestReloadToBrokenCommandKeepsTheOldGeneration(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 2}, nil, "BATON_TEST_MODE=ready")
	before := pidsOf(p.waitFor("2 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 2 }))
	for _, tc := range []struct {
		cfg  *config.Config
		want string
	}{
		{&config.Config{Workers: 2, Command: []string{"/bin/sh", "-c", "exit 7"}}, "reload to generation 2 failed: worker 1 of generation 2 (pid "},
		{&config.Config{Workers: 2, Command: []string{"/nonexistent/app"}}, "exited with status 127 (exec /nonexistent/app: no such file or directory)"},
		{&config.Config{Workers: 2, Command: []string{"/bin/sleep", "60"}, BootTimeout: 300 * time.Millisecond, TimeoutSignal: quiet}, "boot-timeout 300ms expired (no READY=1"},
	} {
		err := p.s.Reload(context.Background(), reloadCfg(t, tc.cfg), nil, "test")
		if !errors.Is(err, ErrReloadFailed) || !strings.Contains(err.Error(), tc.want) || !strings.HasSuffix(err.Error(), "; generation 1 keeps serving") {
			t.Errorf("reload to %v: %v, want %q", tc.cfg.Command, err, tc.want)
		}
		// systemd heard the outcome before the caller did.
		if st := p.up.lastStatus(); !strings.Contains(st, "last reload failed") {
			t.Errorf("STATUS= when the failed reload returned: %q", st)
		}
		snap := p.waitFor("the failed generation gone", 20*time.Second, func(s Snapshot) bool { return len(s.Workers) == 2 && !s.Reloading })
		if snap.Generation != 1 || snap.Ready != 2 {
			t.Errorf("after failed reload: %+v", snap)
		}
		for pid, gen := range pidsOf(snap) {
			if _, ok := before[pid]; !ok || gen != 1 {
				t.Errorf("worker %d (generation %d) is not one of the old workers %v", pid, gen, before)
			}
		}
		if !strings.Contains(snap.Status, "last reload failed") {
			t.Errorf("status %q", snap.Status)
		}
	}
	// A good reload after failed ones works and clears the failure.
	if err := p.s.Reload(context.Background(), reloadCfg(t, &config.Config{Workers: 2}), nil, "test"); err != nil {
		t.Fatal(err)
	}
	if st := p.up.lastStatus(); st != "2/2 workers ready, generation 5" {
		t.Errorf("STATUS= when the good reload returned: %q", st)
	}
	snap, _ := p.s.Snapshot()
	if strings.Contains(snap.Status, "failed") || snap.Generation != 5 {
		t.Errorf("after a good reload: %+v", snap)
	}
	p.stop(Graceful)
}

func TestFailureAfterTheCanaryRollsPromotedSlotsBack(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 3}, nil, "BATON_TEST_MODE=ready")
	p.waitFor("3 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 3 })
	// Slot 1 (the canary) boots; slot 2 fails.
	broken := []string{"/bin/sh", "-c", `if [ "$BATON_WORKER" = 1 ]; then exec "$0"; fi; exit 9`, os.Args[0]}
	err := p.s.Reload(context.Background(), reloadCfg(t, &config.Config{Workers: 3, Command: broken, SettleTime: config.Off}), nil, "test")
	var f *WorkerFailure
	if !errors.As(err, &f) || f.Slot != 2 || f.Generation != 2 || f.How != "exited with status 9" {
		t.Fatalf("got %v", err)
	}
	p.waitFor("slot 1 rolled back to generation 1", 20*time.Second, func(s Snapshot) bool {
		if s.Reloading || s.Ready != 3 || len(s.Workers) != 3 {
			return false
		}
		for _, w := range s.Workers {
			if w.Generation != 1 {
				return false
			}
		}
		return true
	})
	if !p.logged("rolling 1 workers back to generation 1") || !p.logged("rolled back to generation 1") {
		t.Errorf("log:\n%s", p.logLines())
	}
	p.stop(Graceful)
}

func TestReloadChangesTheWorkerCount(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 2}, nil, "BATON_TEST_MODE=ready")
	p.waitFor("2 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 2 })
	if err := p.s.Reload(context.Background(), reloadCfg(t, &config.Config{Workers: 4, Surge: 2}), nil, "test"); err != nil {
		t.Fatal(err)
	}
	p.waitFor("4 ready in generation 2", 20*time.Second, func(s Snapshot) bool { return s.Ready == 4 && len(s.Workers) == 4 && s.Wanted == 4 })
	if err := p.s.Reload(context.Background(), reloadCfg(t, &config.Config{Workers: 1}), nil, "test"); err != nil {
		t.Fatal(err)
	}
	snap := p.waitFor("1 worker in generation 3", 20*time.Second, func(s Snapshot) bool { return len(s.Workers) == 1 && s.Ready == 1 })
	if snap.Workers[0].Generation != 3 || snap.Wanted != 1 {
		t.Errorf("%+v", snap)
	}
	p.stop(Graceful)
}

func TestScaleUpAndDownOneAtATime(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 2}, nil, "BATON_TEST_MODE=ready")
	before := pidsOf(p.waitFor("2 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 2 }))
	if err := p.s.Scale(context.Background(), +1); err != nil {
		t.Fatal(err)
	}
	snap := p.waitFor("3 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 3 })
	for pid := range before {
		if _, ok := pidsOf(snap)[pid]; !ok {
			t.Errorf("scaling up replaced worker %d", pid)
		}
	}
	if err := p.s.Scale(context.Background(), -2); err != nil {
		t.Fatal(err)
	}
	p.waitFor("1 worker", 20*time.Second, func(s Snapshot) bool { return len(s.Workers) == 1 && s.Ready == 1 && s.Wanted == 1 })
	if err := p.s.Scale(context.Background(), -1); err == nil || !strings.Contains(err.Error(), "below 1 worker") {
		t.Errorf("scale to 0: %v", err)
	}
	p.stop(Graceful)
}

// A reload asked for during another is queued, not dropped; queued ones
// coalesce, and everyone waiting hears how the one that ran went.
func TestReloadDuringAReloadIsQueued(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 1}, nil, "BATON_TEST_MODE=ready")
	p.waitFor("1 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 1 })
	slow := reloadCfg(t, &config.Config{Workers: 1, Command: []string{"/bin/sleep", "60"}, BootTimeout: 2 * time.Second, TimeoutSignal: quiet, TimeoutGrace: time.Second})
	results := make(chan error, 3)
	go func() { results <- p.s.Reload(context.Background(), slow, nil, "first") }()
	p.waitFor("the first reload to start", 10*time.Second, func(s Snapshot) bool { return s.Reloading })
	// Two more arrive while the first runs: the second is queued, the
	// third replaces its config.
	go func() {
		results <- p.s.Reload(context.Background(), reloadCfg(t, &config.Config{Workers: 1, Command: []string{"/bin/false"}}), nil, "second")
	}()
	p.waitFor("the second reload queued", 10*time.Second, func(s Snapshot) bool { return s.ReloadQueued })
	go func() {
		results <- p.s.Reload(context.Background(), reloadCfg(t, &config.Config{Workers: 1, SettleTime: config.Off}), nil, "third")
	}()
	p.waitFor("the third reload coalesced", 10*time.Second, func(Snapshot) bool { return p.logged("reload (third) queued behind") })
	var failed, ok int
	for i := 0; i < 3; i++ {
		if err := <-results; err == nil {
			ok++
		} else if errors.Is(err, ErrReloadFailed) {
			failed++
		} else {
			t.Errorf("reload: %v", err)
		}
	}
	if failed != 1 || ok != 2 {
		t.Errorf("%d failed, %d ok: want the slow one failed and the two queued ones done by one reload", failed, ok)
	}
	snap := p.waitFor("generation 3 serving", 10*time.Second, func(s Snapshot) bool { return s.Generation == 3 && s.Ready == 1 && !s.Reloading })
	if snap.ReloadQueued || !p.logged("reload (second) queued: it runs after the reload to generation 2") {
		t.Errorf("%+v\n%s", snap, p.logLines())
	}
	p.stop(Graceful)
}

func TestReloadAddsAndRemovesSockets(t *testing.T) {
	out := t.TempDir()
	web := bindLocal(t, "web")
	p := startPool(t, &config.Config{Workers: 1}, web, "BATON_TEST_MODE=report", "BATON_TEST_OUT="+out)
	p.waitFor("1 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 1 })
	names := func() string {
		b, err := os.ReadFile(filepath.Join(out, "1.json"))
		if err != nil {
			t.Fatal(err)
		}
		var r map[string]any
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		return envMap(r["env"].([]any))["LISTEN_FDNAMES"]
	}
	if n := names(); n != "web" {
		t.Fatalf("names %q", n)
	}
	admin := bindLocal(t, "admin")
	if err := p.s.Reload(context.Background(), reloadCfg(t, &config.Config{Workers: 1}), append(activation.Set{web[0]}, admin...), "test"); err != nil {
		t.Fatal(err)
	}
	p.waitFor("generation 2 reported", 20*time.Second, func(Snapshot) bool { return names() == "web:admin" })
	webAddr := strings.TrimPrefix(web[0].Addr, "tcp://")
	if err := p.s.Reload(context.Background(), reloadCfg(t, &config.Config{Workers: 1}), activation.Set{admin[0]}, "test"); err != nil {
		t.Fatal(err)
	}
	p.waitFor("generation 3 reported", 20*time.Second, func(Snapshot) bool { return names() == "admin" })
	// Once the workers that had it are gone, web is closed everywhere and
	// refuses connections.
	p.waitFor("web closed", 20*time.Second, func(Snapshot) bool {
		c, err := net.Dial("tcp", webAddr)
		if err == nil {
			c.Close()
		}
		return err != nil && p.logged("closing socket web")
	})
	p.stop(Graceful)
}
