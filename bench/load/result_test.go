package load

import (
	"bytes"
	"encoding/csv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The CSV has a header and one line per request.
func TestWriteCSV(t *testing.T) {
	begin := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &Result{Begin: begin, End: begin.Add(time.Second), Records: []Record{
		{Start: begin, Latency: 1500 * time.Microsecond, Status: 200, Conn: 1, Line: "hello, pid 4"},
		{Start: begin.Add(time.Millisecond), Latency: time.Millisecond, Kind: Reset, Reused: true, Conn: 1, Err: &Error{Kind: Reset, Op: "read", Err: syscall.ECONNRESET}},
	}}
	var b bytes.Buffer
	if err := r.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"start", "offset_us", "latency_us", "kind", "status", "reused", "conn", "error", "line"},
		{"2026-01-02T03:04:05Z", "0", "1500", "ok", "200", "false", "1", "", "hello, pid 4"},
		{"2026-01-02T03:04:05.001Z", "1000", "1000", "reset", "0", "true", "1", "reset: read: connection reset by peer", ""},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %q", rows)
	}
	for i := range want {
		if strings.Join(rows[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("row %d: %q, want %q", i, rows[i], want[i])
		}
	}
}

// Percentiles, windows and failures by nearest window on a made-up run.
func TestSummaryAndWindows(t *testing.T) {
	begin := time.Now()
	r := &Result{Begin: begin, End: begin.Add(10 * time.Second)}
	for i := 1; i <= 100; i++ {
		x := Record{Start: begin.Add(time.Duration(i) * 100 * time.Millisecond), Latency: time.Duration(i) * time.Millisecond, Conn: int64(i%4 + 1)}
		if i == 30 || i == 31 || i == 95 {
			x.Kind, x.Reused = Reset, i == 31
		}
		r.Records = append(r.Records, x)
	}
	s := r.Summary()
	if s.P50 != 50*time.Millisecond || s.P90 != 90*time.Millisecond || s.P99 != 99*time.Millisecond || s.Max != 100*time.Millisecond {
		t.Errorf("percentiles %s", s)
	}
	if s.Requests != 100 || s.OK != 97 || s.Failed != 3 || s.ByKind[Reset] != 3 || s.FailedReused != 1 || s.Conns != 4 || s.PerSecond != 10 {
		t.Errorf("counts %s", s)
	}
	if got := s.FailedKinds(); got != "reset 3" {
		t.Errorf("FailedKinds %q", got)
	}
	w := After(begin.Add(2*time.Second), time.Second) // requests 20..29
	if got := r.Worst(w); got != 29*time.Millisecond {
		t.Errorf("worst in window %s", got)
	}
	if in := r.Within(w); len(in.Records) != 10 || in.Summary().Max != 29*time.Millisecond {
		t.Errorf("within: %d records", len(in.Records))
	}
	if out := r.Outside(w, After(begin.Add(9*time.Second), 2*time.Second)); len(out.Records) != 79 || out.Summary().Max != 89*time.Millisecond {
		t.Errorf("outside: %d records, max %s", len(out.Records), out.Summary().Max)
	}
	if got := r.FailedNearest([]Window{w, After(begin.Add(8*time.Second), time.Second)}); len(got) != 2 || got[0] != 2 || got[1] != 1 {
		t.Errorf("failed nearest %v", got)
	}
	if got := len(r.Failures()); got != 3 {
		t.Errorf("%d failures", got)
	}
}
