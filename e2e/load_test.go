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

// finishedAcrossKill stops the load, fails the test on any failed
// request (finish), and on none that was in flight when baton was killed
// and answered after: without one, a kill test proves nothing.
func finishedAcrossKill(t *testing.T, l *loadRun, killed time.Time) {
	t.Helper()
	res := l.finish()
	inFlight := 0
	for _, x := range res.Records {
		if x.Start.Before(killed) && x.Start.Add(x.Latency).After(killed) && x.Kind == load.OK {
			inFlight++
		}
	}
	t.Logf("kill -9 with %d requests in flight: %s", inFlight, res.Summary())
	if inFlight == 0 {
		t.Errorf("no request was in flight when baton died: the test proves nothing")
	}
}
