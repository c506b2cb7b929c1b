package main

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestBenchmarkRuns keeps the benchmark working with small pools: baton
// with 1 and 10 workers and gunicorn with 4 must start, be measured,
// reload (surge 1 and 5) without failing a request, and stop.
func TestBenchmarkRuns(t *testing.T) {
	o := options{workers: []int{1, 10}, surge: 5, window: time.Second, gunicorn: 4, rate: 50, log: func(s string) { t.Log(s) }}
	res, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	report(&out, o, res)
	rows := res.rows
	t.Log("\n" + out.String())
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	for _, r := range rows {
		for _, e := range r.errs {
			t.Errorf("%s, %d workers: %s", r.server, r.workers, e)
		}
		if !r.steady.measured || r.steady.rss == 0 {
			t.Errorf("%s, %d workers: supervisor not measured", r.server, r.workers)
		}
		if r.steady.procs != r.workers+1 {
			t.Errorf("%s, %d workers: %d processes in the unit, want %d", r.server, r.workers, r.steady.procs, r.workers+1)
		}
		want := 1
		if r.workers > 1 && r.server != "gunicorn (sync workers)" {
			want = 2
		}
		if len(r.reloads) != want {
			t.Errorf("%s, %d workers: %d reloads, want %d", r.server, r.workers, len(r.reloads), want)
		}
		for _, rl := range r.reloads {
			if rl.exit != "0" || rl.failed > 0 || rl.reqs == 0 {
				t.Errorf("%s, %d workers: reload surge %d: exit %s, %d of %d requests failed (%s)", r.server, r.workers, rl.surge, rl.exit, rl.failed, rl.reqs, rl.kinds)
			}
		}
		if r.server != "gunicorn (sync workers)" && !r.watchdog.measured {
			t.Errorf("%s, %d workers: not measured with the watchdog", r.server, r.workers)
		}
	}
}
