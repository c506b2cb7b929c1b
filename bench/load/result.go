package load

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Record is one request.
type Record struct {
	// Start is when the request started: when it was sent in a closed
	// loop, when it was scheduled at a fixed rate.
	Start time.Time
	// Latency runs from Start to the last byte of the answer, or to the
	// failure.
	Latency time.Duration
	Kind    Kind
	// Status is the answer's status code, 0 when none was read.
	Status int
	// Reused is whether the request went on a connection that had
	// carried an earlier one: a keep-alive race shows as a failure with
	// Reused set.
	Reused bool
	// Conn numbers the run's connections from 1; 0 when none was made.
	Conn int64
	// Err is why the request failed (an *Error), nil for OK.
	Err error
	// Line is the first line of the body, with Options.BodyLine.
	Line string
}

func (r Record) String() string {
	reused := "new"
	if r.Reused {
		reused = "reused"
	}
	s := fmt.Sprintf("%s %s conn %d (%s) after %s", r.Start.Format("15:04:05.000000"), r.Kind, r.Conn, reused, Round(r.Latency))
	if r.Err != nil {
		s += ": " + r.Err.Error()
	}
	return s
}

// Result is a run's records, sorted by Start.
type Result struct {
	// Begin and End are when the run started and when it was told to
	// stop; requests in flight then finished after End.
	Begin, End time.Time
	Records    []Record
	// Missed counts, at a fixed rate, the requests scheduled before the
	// end that no client was free to start: the rate was more than the
	// clients could carry.
	Missed int
}

// Window is a span of a run, From inclusive, To exclusive.
type Window struct{ From, To time.Time }

// After is the window of d from t.
func After(t time.Time, d time.Duration) Window { return Window{t, t.Add(d)} }

func (w Window) has(t time.Time) bool { return !t.Before(w.From) && t.Before(w.To) }

// Within is the requests that started in w.
func (r *Result) Within(w Window) *Result {
	out := &Result{Begin: w.From, End: w.To}
	for _, x := range r.Records {
		if w.has(x.Start) {
			out.Records = append(out.Records, x)
		}
	}
	return out
}

// Outside is the requests that started in none of ws: with ws the
// disturbances of a run (reloads and the second after each), the steady
// part of the same run.
func (r *Result) Outside(ws ...Window) *Result {
	out := &Result{Begin: r.Begin, End: r.End}
next:
	for _, x := range r.Records {
		for _, w := range ws {
			if w.has(x.Start) {
				continue next
			}
		}
		out.Records = append(out.Records, x)
	}
	return out
}

// Worst is the highest latency of the requests that started in w.
func (r *Result) Worst(w Window) time.Duration {
	var worst time.Duration
	for _, x := range r.Records {
		if w.has(x.Start) && x.Latency > worst {
			worst = x.Latency
		}
	}
	return worst
}

// Failures is the failed requests.
func (r *Result) Failures() []Record {
	var out []Record
	for _, x := range r.Records {
		if x.Kind != OK {
			out = append(out, x)
		}
	}
	return out
}

// FailedNearest counts the failures by the window each started nearest to
// (inside it, or the least time before or after it).
func (r *Result) FailedNearest(ws []Window) []int {
	if len(ws) == 0 {
		return nil
	}
	counts := make([]int, len(ws))
	for _, x := range r.Records {
		if x.Kind == OK {
			continue
		}
		best, bestD := 0, time.Duration(math.MaxInt64)
		for i, w := range ws {
			var d time.Duration
			switch {
			case x.Start.Before(w.From):
				d = w.From.Sub(x.Start)
			case !x.Start.Before(w.To):
				d = x.Start.Sub(w.To)
			}
			if d < bestD {
				best, bestD = i, d
			}
		}
		counts[best]++
	}
	return counts
}

// Summary is a run's numbers.
type Summary struct {
	Requests, OK, Failed int
	// ByKind counts the requests by kind (OK included).
	ByKind map[Kind]int
	// FailedReused counts the failures on reused connections.
	FailedReused int
	// Conns is how many connections the requests went on.
	Conns int
	// PerSecond is requests per second from Begin to End.
	PerSecond float64
	// Latency percentiles (nearest rank) over every request, failed ones
	// included.
	P50, P90, P99, Max time.Duration
	Missed             int
}

// Summary computes the run's numbers.
func (r *Result) Summary() Summary {
	s := Summary{Requests: len(r.Records), ByKind: map[Kind]int{}, Missed: r.Missed}
	lat := make([]time.Duration, len(r.Records))
	conns := map[int64]bool{}
	for i, x := range r.Records {
		s.ByKind[x.Kind]++
		if x.Kind != OK {
			s.Failed++
			if x.Reused {
				s.FailedReused++
			}
		}
		if x.Conn != 0 {
			conns[x.Conn] = true
		}
		lat[i] = x.Latency
	}
	s.OK = s.ByKind[OK]
	s.Conns = len(conns)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	s.P50, s.P90, s.P99 = percentile(lat, 50), percentile(lat, 90), percentile(lat, 99)
	if n := len(lat); n > 0 {
		s.Max = lat[n-1]
	}
	if d := r.End.Sub(r.Begin); d > 0 {
		s.PerSecond = float64(s.Requests) / d.Seconds()
	}
	return s
}

// percentile is the nearest-rank p-th percentile of sorted values.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p+99)/100 - 1
	if i < 0 {
		i = 0
	}
	return sorted[i]
}

// FailedKinds is the failure counts by kind, "reset 3, eof 1", or "none".
func (s Summary) FailedKinds() string {
	var parts []string
	for _, k := range Kinds {
		if n := s.ByKind[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (s Summary) String() string {
	out := fmt.Sprintf("%d requests, %d ok, %d failed (%s; %d on reused connections), %d connections, %.0f req/s, latency p50 %s p90 %s p99 %s max %s",
		s.Requests, s.OK, s.Failed, s.FailedKinds(), s.FailedReused, s.Conns, s.PerSecond, Round(s.P50), Round(s.P90), Round(s.P99), Round(s.Max))
	if s.Missed > 0 {
		out += fmt.Sprintf(", %d scheduled requests never started (too few clients for the rate)", s.Missed)
	}
	return out
}

// WriteCSV writes one line per request, under a header: start (RFC 3339,
// ns), offset from the run's begin and latency in microseconds, kind,
// status, reused, conn, error and the body's first line.
func (r *Result) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"start", "offset_us", "latency_us", "kind", "status", "reused", "conn", "error", "line"})
	for _, x := range r.Records {
		var e string
		if x.Err != nil {
			e = x.Err.Error()
		}
		_ = cw.Write([]string{
			x.Start.Format(time.RFC3339Nano),
			strconv.FormatInt(x.Start.Sub(r.Begin).Microseconds(), 10),
			strconv.FormatInt(x.Latency.Microseconds(), 10),
			x.Kind.String(),
			strconv.Itoa(x.Status),
			strconv.FormatBool(x.Reused),
			strconv.FormatInt(x.Conn, 10),
			e,
			x.Line,
		})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

// SaveCSV writes the records as WriteCSV does, to a file it creates at
// path.
func (r *Result) SaveCSV(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.WriteCSV(f); err != nil {
		return errors.Join(err, f.Close())
	}
	return f.Close()
}

// Round formats a duration for a report.
func Round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// Durations formats a list.
func Durations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = Round(d)
	}
	return strings.Join(s, ", ")
}
