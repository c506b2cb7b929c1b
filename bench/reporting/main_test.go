package main

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestBenchmarkRuns keeps the benchmark working: one short round of the
// example alone, under baton without reporting and with datagrams (and
// through the scoreboard once baton and the example use it), each of which
// must serve every request.
func TestBenchmarkRuns(t *testing.T) {
	o := options{duration: time.Second, clients: 8, rate: 200, rounds: 1, cases: []string{"alone-1", "off-1", "datagrams-1", "scoreboard-1"}, log: func(s string) { t.Log(s) }}
	res, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	report(&out, o, res)
	t.Log("\n" + out.String())
	if want := 2 * (len(o.cases) - len(res.skipped)); len(res.runs) != want {
		t.Errorf("%d runs, want %d", len(res.runs), want)
	}
	for _, r := range res.runs {
		switch {
		case r.err != nil:
			t.Errorf("%s %s: %v", r.c.name, r.kind(), r.err)
		case r.sum.OK == 0:
			t.Errorf("%s %s: no request succeeded", r.c.name, r.kind())
		case r.sum.Failed > 0:
			t.Errorf("%s %s: %d of %d requests failed (%s)", r.c.name, r.kind(), r.sum.Failed, r.sum.Requests, r.sum.FailedKinds())
		case r.cpuPerRequest <= 0:
			t.Errorf("%s %s: no CPU time measured", r.c.name, r.kind())
		}
	}
}
