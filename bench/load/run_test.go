package load

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testutil"
)

// At a fixed rate each request starts on its schedule, and its latency
// counts from there.
func TestFixedRateKeepsTheSchedule(t *testing.T) {
	testutil.CheckFDLeaks(t)
	s := serve(t, func(c *srvConn) {
		for c.read() {
			c.write(answer("ok\n"))
		}
	})
	r, sum := run(t, Options{URL: s.url, Clients: 3, Rate: 500, Requests: 12, KeepAlive: true})
	if sum.OK != 12 || r.Missed != 0 {
		t.Fatalf("%s", sum)
	}
	for i, x := range r.Records {
		if want := r.Begin.Add(time.Duration(i) * 2 * time.Millisecond); !x.Start.Equal(want) {
			t.Errorf("request %d scheduled at %s, want %s", i, x.Start.Sub(r.Begin), want.Sub(r.Begin))
		}
	}
}

// Stop and the context end a run; no request is lost or left running.
func TestStopAndContextEndARun(t *testing.T) {
	testutil.CheckFDLeaks(t)
	s := serve(t, func(c *srvConn) {
		for c.read() {
			c.write(answer("ok\n"))
		}
	})
	for _, rate := range []float64{0, 1000} {
		var progress atomic.Int64
		l, err := Start(context.Background(), Options{URL: s.url, Clients: 4, Rate: rate, KeepAlive: true, Progress: func(Record) { progress.Add(1) }})
		if err != nil {
			t.Fatal(err)
		}
		if !testutil.Eventually(t, 30*time.Second, func() bool { return l.OK() >= 50 }) {
			t.Fatalf("rate %g: stalled at %d ok, %d failed", rate, l.OK(), l.Failed())
		}
		r := l.Stop()
		sum := r.Summary()
		if sum.OK < 50 || sum.Failed != 0 || int64(sum.OK) != l.OK() || progress.Load() != int64(sum.Requests) {
			t.Errorf("rate %g: %s; counters %d ok, progress %d", rate, sum, l.OK(), progress.Load())
		}
		if l.Stop() != r {
			t.Error("a second Stop gave another result")
		}

		ctx, cancel := context.WithCancel(context.Background())
		l, err = Start(ctx, Options{URL: s.url, Clients: 2, Rate: rate})
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 30*time.Second, func() bool { return l.OK() >= 10 })
		cancel()
		if sum := l.Wait().Summary(); sum.OK < 10 || sum.Failed != 0 {
			t.Errorf("rate %g, cancelled: %s", rate, sum)
		}
	}
	// Duration ends a run by itself.
	r, err := Run(context.Background(), Options{URL: s.url, Duration: 100 * time.Millisecond, KeepAlive: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum := r.Summary(); sum.OK == 0 || sum.Failed != 0 {
		t.Errorf("duration: %s", sum)
	}
}

// Bad options are refused before anything starts.
func TestOptionsAreChecked(t *testing.T) {
	for _, o := range []Options{
		{URL: "https://127.0.0.1/"},
		{URL: "127.0.0.1:80"},
		{URL: "http:///path"},
		{URL: "http://127.0.0.1/", Clients: -1},
		{URL: "http://127.0.0.1/", Rate: -5},
		{URL: "http://127.0.0.1/", Timeout: -time.Second},
	} {
		if _, err := Start(context.Background(), o); err == nil || !strings.HasPrefix(err.Error(), "load options: ") {
			t.Errorf("%+v: %v", o, err)
		}
	}
}
