package workers

import (
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/config"
)

func TestMaxLifetimeRecyclesWithAReadyReplacementFirst(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 4, MaxLifetime: 500 * time.Millisecond}, nil, "BATON_TEST_MODE=ready")
	p.waitFor("4 ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 4 })
	stop := make(chan struct{})
	low := watchReady(p, stop)
	// At most surge (1) replacement boots at a time.
	most := 0
	p.waitFor("8 recycles", 30*time.Second, func(s Snapshot) bool {
		starting := 0
		for _, w := range s.Workers {
			if w.State == Starting {
				starting++
			}
		}
		most = max(most, starting)
		return s.Recycled >= 8
	})
	close(stop)
	if l := <-low; l < 4 {
		t.Errorf("ready workers fell to %d while recycling", l)
	}
	if most > 1 {
		t.Errorf("%d replacements booted at once with surge 1", most)
	}
	snap, _ := p.s.Snapshot()
	if snap.Generation != 1 {
		t.Errorf("recycling changed the generation to %d", snap.Generation)
	}
	if !p.logged("max-lifetime 500ms reached") {
		t.Errorf("log:\n%s", p.logLines())
	}
	p.stop(Graceful)
}

func TestMaxMemoryRecycles(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 1, MaxMemory: 32 << 20}, nil, "BATON_TEST_MODE=bloat")
	p.waitFor("a memory recycle", 30*time.Second, func(s Snapshot) bool { return s.Recycled >= 1 })
	if !p.logged("over max-memory 32MiB") {
		t.Errorf("log:\n%s", p.logLines())
	}
	p.stop(Graceful)
}

func TestWorkerAsksToBeRecycled(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 2}, nil, "BATON_TEST_MODE=ask-recycle")
	p.waitFor("2 recycles", 30*time.Second, func(s Snapshot) bool { return s.Recycled >= 2 && s.Ready == 2 })
	if !p.logged("the worker asked (X_BATON_RECYCLE=1)") {
		t.Errorf("log:\n%s", p.logLines())
	}
	p.stop(Graceful)
}

func TestFailedRecycleKeepsTheWorker(t *testing.T) {
	p := startPool(t, &config.Config{Workers: 1}, nil, "BATON_TEST_MODE=recycle-then-break", "BATON_TEST_OUT="+t.TempDir())
	servingPID := func(s Snapshot) int {
		for _, w := range s.Workers {
			if w.State == Ready {
				return w.PID
			}
		}
		return 0
	}
	first := servingPID(p.waitFor("ready", 20*time.Second, func(s Snapshot) bool { return s.Ready == 1 }))
	p.waitFor("two failed replacements", 20*time.Second, func(Snapshot) bool {
		n := 0
		for _, e := range p.hook.AllEntries() {
			if strings.Contains(e.Message, "recycling worker 1 failed: worker 1 of generation 1 (pid") && strings.Contains(e.Message, "exited with status 1") && strings.Contains(e.Message, "the current worker keeps serving") {
				n++
			}
		}
		return n >= 2
	})
	snap, _ := p.s.Snapshot()
	if snap.Ready != 1 || snap.Recycled != 0 || servingPID(snap) != first {
		t.Errorf("the serving worker %d was touched: %+v", first, snap.Workers)
	}
	p.stop(Graceful)
}
