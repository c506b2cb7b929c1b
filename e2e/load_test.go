package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/internal/testutil"
)

// loadRun is load on a service under test: bench/load's client, which
// never retries, with a fresh connection per request so that requests
// spread over workers as new connections do.
type loadRun struct {
	*load.Load
	t *testing.T
}

func startLoad(t *testing.T, url string, clients int) *loadRun {
	t.Helper()
	l, err := load.Start(context.Background(), load.Options{URL: url, Clients: clients, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := &loadRun{Load: l, t: t}
	t.Cleanup(func() { l.Stop() })
	return r
}

// waitServed waits until n more requests have succeeded, or one failed
// (finish reports it).
func (l *loadRun) waitServed(n int64) {
	l.t.Helper()
	target := l.OK() + n
	if !testutil.Eventually(l.t, 60*time.Second, func() bool { return l.OK() >= target || l.Failed() > 0 }) {
		l.t.Fatalf("load stalled at %d requests", l.OK())
	}
}

// served waits until n more requests have succeeded, whatever fails
// meanwhile.
func (l *loadRun) served(n int64) {
	l.t.Helper()
	target := l.OK() + n
	if !testutil.Eventually(l.t, 60*time.Second, func() bool { return l.OK() >= target }) {
		l.t.Fatalf("load stalled at %d requests, %d failed", l.OK(), l.Failed())
	}
}

// finish stops the load and fails the test unless some requests were
// served and none failed, listing the failures by kind.
func (l *loadRun) finish() *load.Result {
	l.t.Helper()
	r := l.Stop()
	s := r.Summary()
	if s.OK == 0 {
		l.t.Errorf("no request succeeded: %s", s)
	}
	if s.Failed > 0 {
		l.t.Errorf("%d of %d requests failed (%s; %d on reused connections):\n%s", s.Failed, s.Requests, s.FailedKinds(), s.FailedReused, failures(r, 20))
	}
	return r
}

// failures lists up to max failed requests.
func failures(r *load.Result, max int) string {
	var b strings.Builder
	f := r.Failures()
	for i, x := range f {
		if i == max {
			fmt.Fprintf(&b, "... and %d more\n", len(f)-max)
			break
		}
		fmt.Fprintln(&b, x)
	}
	return b.String()
}

// servedAcross counts the requests that were in flight at t (started
// before it, ended after it) and were answered.
func servedAcross(r *load.Result, t time.Time) int {
	n := 0
	for _, x := range r.Records {
		if x.Start.Before(t) && x.Start.Add(x.Latency).After(t) && x.Kind == load.OK {
			n++
		}
	}
	return n
}
