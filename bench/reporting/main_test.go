package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/internal/testutil"
)

// TestBenchmarkRuns keeps the benchmark working: every case runs and
// serves without a failed request. (How fast is for the benchmark to say,
// not for a test.)
func TestBenchmarkRuns(t *testing.T) {
	testutil.CheckChildLeaks(t)
	testutil.CheckFDLeaks(t)
	var out bytes.Buffer
	o := options{duration: time.Second, warmup: 200 * time.Millisecond, rounds: 1, concurrency: 4, workers: 2, path: "/"}
	res, err := runReports(context.Background(), o, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	pairs, _, err := reportsPairs(false, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(pairs) || len(pairs) < 3 {
		t.Fatalf("%d cases measured of %d, want datagrams under baton, the scoreboard under the harness (and under baton once it passes one) and baton beside the example alone", len(res), len(pairs))
	}
	for _, r := range res {
		for _, s := range []load.Summary{r.on, r.ref} {
			if s.OK == 0 || s.Failed > 0 {
				t.Errorf("%s beside %s: %d requests, %d failed (%s)", r.p.c.name, r.p.ref.name, s.Requests, s.Failed, s.FailedKinds())
			}
		}
		if r.cpu <= 0 || r.refCPU <= 0 {
			t.Errorf("%s beside %s: no CPU time measured", r.p.c.name, r.p.ref.name)
		}
	}
}
