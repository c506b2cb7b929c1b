package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/bench/load"
)

// TestBenchmarkRuns keeps the benchmark working: one short row per server
// (keep-alive off) must run, serve, and count failures where there are
// some: the plain service refuses connections while it restarts with a
// socket of its own, and baton fails none through a reload and a reload
// into a broken app, whose reload command fails.
func TestBenchmarkRuns(t *testing.T) {
	o := options{duration: 3 * time.Second, events: 1, clients: 8, workers: 4, keepAlive: []bool{false}, log: func(s string) { t.Log(s) }}
	cases := []struct {
		sys  string
		trig trigger
	}{
		{"gunicorn", reloadFast},
		{"puma", reloadFast},
		{"uwsgi", reloadFast},
		{"go", restartSelf},
		{"baton-go", reloadFast},
		{"baton-gunicorn", reloadBroken},
	}
	o.triggers = triggers
	o.want = func(s *system, tr trigger) bool {
		for _, c := range cases {
			if c.sys == s.id && c.trig == tr {
				return true
			}
		}
		return false
	}
	res, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	report(&out, o, res)
	t.Log("\n" + out.String())
	for _, r := range res.rows {
		name := r.sys.id + " " + string(r.trig)
		if len(r.errs) > 0 || r.res == nil {
			t.Errorf("%s: %s", name, strings.Join(r.errs, "; "))
			continue
		}
		if r.sum.OK == 0 {
			t.Errorf("%s: no request succeeded", name)
		}
		switch {
		case r.sys.id == "go":
			if r.sum.ByKind[load.Refused] == 0 {
				t.Errorf("%s: no connection refused while the plain service restarted with its own socket: is failure counting broken?", name)
			}
		case strings.HasPrefix(r.sys.id, "baton"):
			if r.sum.Failed > 0 {
				t.Errorf("%s: %d of %d requests failed (%s)", name, r.sum.Failed, r.sum.Requests, r.sum.FailedKinds())
				for _, x := range r.res.Failures() {
					t.Log(x)
				}
			}
			if r.trig == reloadBroken {
				if r.exits[0] == "0" || r.lastSecond == 0 {
					t.Errorf("%s: reload exit %s, %d answered in the last second: want a failed reload and the old workers serving", name, r.exits[0], r.lastSecond)
				}
			} else if r.exits[0] != "0" {
				t.Errorf("%s: reload exit %s, want 0", name, r.exits[0])
			}
		}
	}
}
