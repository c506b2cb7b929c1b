package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testutil"
)

// TestDrainBenchmark keeps the drain benchmark working, and holds the
// example to it: a short run with reloads under keep-alive load from
// clients that never retry must fail no request and no reload, and the
// drain must have answered some requests with Connection: close.
func TestDrainBenchmark(t *testing.T) {
	var out bytes.Buffer
	// A quiet window far above the clients' pauses: a busy CI machine may
	// stall a client, and a request sent after the window on an idle
	// connection is HTTP/1.1's own race, not the drain's.
	o := options{duration: 4 * time.Second, concurrency: 8, workers: 2, reloads: 2, think: 20 * time.Millisecond, path: "/", quiet: 5 * time.Second}
	r, err := runDrain(context.Background(), o, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if r.load.requests == 0 || r.load.failedTotal() > 0 {
		t.Errorf("%d requests, %d failed: %v", r.load.requests, r.load.failedTotal(), r.load.firstErr)
	}
	if len(r.reloads) > 0 {
		t.Errorf("reloads failed: %v", r.reloads)
	}
	if r.load.closes == 0 {
		t.Error("no answer carried Connection: close: the drains did not meet a keep-alive connection")
	}
}

// TestReportsBenchmark keeps the throughput benchmark working: every case
// runs and serves without a failure. (How fast is for the benchmark to
// say, not for a test.)
func TestReportsBenchmark(t *testing.T) {
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
		for _, l := range []*tally{r.load, r.offLoad} {
			if l.requests == 0 || l.failedTotal() > 0 {
				t.Errorf("%s: %d requests, %d failed: %v", r.c.name, l.requests, l.failedTotal(), l.firstErr)
			}
		}
	}
}
