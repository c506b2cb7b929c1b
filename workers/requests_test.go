package workers

import (
	"strconv"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/sdnotify"
)

func TestRequestSetKeepsBeginOrder(t *testing.T) {
	var r requestSet
	t0 := time.Unix(0, 0)
	for i, id := range []string{"a", "b", "c"} {
		r.begin(id, t0.Add(time.Duration(i)*time.Second))
	}
	r.end("a")
	if id, _ := r.oldest(); id != "b" || r.len() != 2 {
		t.Fatalf("oldest %q len %d", id, r.len())
	}
	r.begin("b", t0.Add(10*time.Second)) // restarted: now the newest
	if id, _ := r.oldest(); id != "c" {
		t.Fatalf("oldest %q", id)
	}
	r.end("c")
	r.end("b")
	r.end("nope")
	if id, start := r.oldest(); id != "" || !start.IsZero() || r.len() != 0 {
		t.Fatalf("not empty: %q", id)
	}
}

// BenchmarkRequestSet is one request's begin, end and a look at the oldest
// with n others in flight: its cost must not grow with n.
func BenchmarkRequestSet(b *testing.B) {
	for _, n := range []int{1, 1000, 100000} {
		b.Run(strconv.Itoa(n)+"-in-flight", func(b *testing.B) {
			var r requestSet
			t0 := time.Unix(0, 0)
			for i := 0; i < n; i++ {
				r.begin("held-"+strconv.Itoa(i), t0)
			}
			ids := make([]string, 1024)
			for i := range ids {
				ids[i] = "r-" + strconv.Itoa(i)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				id := ids[i%len(ids)]
				r.begin(id, t0)
				_, _ = r.oldest()
				r.end(id)
			}
		})
	}
}

// BenchmarkNotifyRequest is the supervisor's handling of one request's
// BEGIN and END datagrams with n requests in flight across the pool.
func BenchmarkNotifyRequest(b *testing.B) {
	for _, n := range []int{1, 1000, 100000} {
		b.Run(strconv.Itoa(n)+"-in-flight", func(b *testing.B) {
			t := &testing.T{}
			workers := 32
			m := newMachine(t, &config.Config{Workers: workers, RequestTimeout: time.Hour})
			b.Cleanup(func() { _ = m.s.Close() })
			for i := 1; i <= workers; i++ {
				m.notify(m.slotWorker(i), "READY=1")
			}
			for i := 0; i < n; i++ {
				w := m.slotWorker(i%workers + 1)
				if w.reqs.len() >= maxRequestsTracked {
					continue
				}
				w.reqs.begin("held-"+strconv.Itoa(i), m.clock)
			}
			w := m.slotWorker(1)
			begin, _ := sdnotify.Parse([]byte(FieldRequestBegin + "=x"))
			end, _ := sdnotify.Parse([]byte(FieldRequestEnd + "=x"))
			evBegin := notifyEvent{dg: &sdnotify.Datagram{PID: w.pid, Message: begin}, chain: []int{w.pid}}
			evEnd := notifyEvent{dg: &sdnotify.Datagram{PID: w.pid, Message: end}, chain: []int{w.pid}}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m.s.handle(evBegin)
				m.s.handle(evEnd)
			}
		})
	}
}
