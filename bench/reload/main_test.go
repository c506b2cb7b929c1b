package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestBenchmarkRuns keeps the benchmark working: a short run must complete
// and report no failed request and no failed reload.
func TestBenchmarkRuns(t *testing.T) {
	var out bytes.Buffer
	o := options{duration: 3 * time.Second, concurrency: 8, reloads: 2, workers: 2, path: "/"}
	if err := run(context.Background(), o, &out); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "| on ") || strings.HasPrefix(line, "| off ") {
			f := strings.Split(line, "|")
			if strings.TrimSpace(f[4]) != "0" {
				t.Errorf("failed requests: %s", line)
			}
		}
		if strings.HasPrefix(line, "reload failed") {
			t.Error(line)
		}
	}
}
