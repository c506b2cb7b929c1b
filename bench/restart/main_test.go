package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/bench/load"
)

// TestBenchmarkRuns keeps the benchmark working, and holds baton to its
// promise on the way: no connection refused and no request failed through
// restarts, a kill -9 (under ExitType=cgroup, the workers finish their
// requests) and an upgrade.
func TestBenchmarkRuns(t *testing.T) {
	o := options{duration: 4 * time.Second, concurrency: 8, workers: 2}
	rows, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	report(&out, o, rows)
	t.Log("\n" + out.String())
	for _, r := range rows {
		for _, e := range r.errs {
			t.Errorf("%s: %s", r.name, e)
		}
		if !strings.HasPrefix(r.name, "baton") {
			continue
		}
		if n := r.sum.ByKind[load.Refused]; n > 0 {
			t.Errorf("baton refused %d connections", n)
		}
		// Events: restart, restart, restart, kill -9, upgrade.
		for i, n := range r.failedAround {
			if n != 0 {
				t.Errorf("event %d failed %d requests", i+1, n)
			}
		}
		if t.Failed() {
			for _, x := range r.res.Failures() {
				t.Log(x)
			}
		}
	}
}
