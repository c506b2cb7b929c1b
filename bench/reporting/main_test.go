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
	if len(res) != 2 {
		t.Fatalf("%d cases measured, want datagrams under baton and the scoreboard under the harness", len(res))
	}
	for _, r := range res {
		for _, s := range []load.Summary{r.on, r.off} {
			if s.OK == 0 || s.Failed > 0 {
				t.Errorf("%s: %d requests, %d failed (%s)", r.c.name, s.Requests, s.Failed, s.FailedKinds())
			}
		}
	}
}
