package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestBenchmarkRuns keeps the benchmark working, and holds baton to its
// promise on the way: no connection refused through restarts, a kill -9
// and an upgrade, and failures only around the kill -9.
func TestBenchmarkRuns(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), options{duration: 4 * time.Second, concurrency: 8, workers: 2}, &out); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "event failed") {
			t.Error(line)
		}
		if !strings.HasPrefix(line, "| baton") {
			continue
		}
		f := strings.Split(line, "|")
		if refused := strings.TrimSpace(f[5]); refused != "0" {
			t.Errorf("baton refused %s connections: %s", refused, line)
		}
		// failed around: restart, restart, restart, kill -9, upgrade
		around := strings.Split(strings.TrimSpace(f[13]), ", ")
		for i, n := range around {
			if i != 3 && n != "0" {
				t.Errorf("event %d (not the kill -9) failed %s requests: %s", i+1, n, line)
			}
		}
	}
}
