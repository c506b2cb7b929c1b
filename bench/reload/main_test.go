package main

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestBenchmarkRuns keeps the benchmark working: a short run must complete
// and report no failed request and no failed reload.
func TestBenchmarkRuns(t *testing.T) {
	o := options{duration: 3 * time.Second, concurrency: 8, reloads: 2, workers: 2, path: "/"}
	results, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	report(&out, o, results)
	t.Log("\n" + out.String())
	for _, r := range results {
		if r.Summary.OK == 0 {
			t.Errorf("keep-alive %s: no request succeeded", onOff(r.KeepAlive))
		}
		if r.Summary.Failed > 0 {
			t.Errorf("keep-alive %s: %d of %d requests failed (%s; %d on reused connections), listed above", onOff(r.KeepAlive), r.Summary.Failed, r.Summary.Requests, r.Summary.FailedKinds(), r.Summary.FailedReused)
		}
		for i, rl := range r.Reloads {
			if rl.Err != nil {
				t.Errorf("keep-alive %s: reload %d: %v", onOff(r.KeepAlive), i+1, rl.Err)
			}
		}
	}
}
