package load

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Sample is one request; Kind is "" for success.
type Sample struct {
	Start   time.Time
	Latency time.Duration
	Kind    string
}

// Event is something the benchmark did during a run, from Start to End.
type Event struct {
	Start, End time.Time
	Err        error
}

// Kinds are the failure kinds, in report order.
var Kinds = []string{"refused", "reset", "closed", "timeout", "non-2xx", "other"}

// Run drives url with n clients until stop is closed.
func Run(url string, n int, keepAlive bool, stop <-chan struct{}) []Sample {
	tr := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: n, MaxIdleConns: n}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var mu sync.Mutex
	var all []Sample
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []Sample
			for {
				select {
				case <-stop:
					mu.Lock()
					all = append(all, local...)
					mu.Unlock()
					return
				default:
				}
				start := time.Now()
				kind := get(client, url)
				local = append(local, Sample{Start: start, Latency: time.Since(start), Kind: kind})
			}
		}()
	}
	wg.Wait()
	return all
}

func get(c *http.Client, url string) string {
	resp, err := c.Get(url)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode < 200 || resp.StatusCode > 299) {
			return "non-2xx"
		}
	}
	return Classify(err)
}

// Classify names a request error's kind.
func Classify(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), strings.Contains(err.Error(), "EOF"):
		return "closed"
	}
	return "other"
}

// Summary is a run's numbers.
type Summary struct {
	Requests      int
	Failed        map[string]int
	FailedTotal   int
	P50, P99, Max time.Duration
	PerSecond     float64
	// WorstAround is, per event, the slowest request that started during
	// it or in the second after.
	WorstAround []time.Duration
	// FailedAround is, per event, the failed requests nearest to it (each
	// failure counts once, for the event it started closest to).
	FailedAround []int
}

// Summarize computes a run's numbers.
func Summarize(samples []Sample, events []Event, elapsed time.Duration) Summary {
	s := Summary{Requests: len(samples), Failed: map[string]int{}}
	lat := make([]time.Duration, 0, len(samples))
	for _, x := range samples {
		if x.Kind != "" {
			s.Failed[x.Kind]++
			s.FailedTotal++
		}
		lat = append(lat, x.Latency)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if n := len(lat); n > 0 {
		s.P50, s.P99, s.Max = lat[n*50/100], lat[n*99/100], lat[n-1]
	}
	if elapsed > 0 {
		s.PerSecond = float64(len(samples)) / elapsed.Seconds()
	}
	for _, ev := range events {
		worst := time.Duration(0)
		for _, x := range samples {
			if !x.Start.Before(ev.Start) && x.Start.Before(ev.End.Add(time.Second)) && x.Latency > worst {
				worst = x.Latency
			}
		}
		s.WorstAround = append(s.WorstAround, worst)
	}
	if len(events) > 0 {
		s.FailedAround = make([]int, len(events))
		for _, x := range samples {
			if x.Kind == "" {
				continue
			}
			best, bestD := 0, time.Duration(1<<62)
			for i, ev := range events {
				var d time.Duration
				switch {
				case x.Start.Before(ev.Start):
					d = ev.Start.Sub(x.Start)
				case x.Start.After(ev.End):
					d = x.Start.Sub(ev.End)
				}
				if d < bestD {
					best, bestD = i, d
				}
			}
			s.FailedAround[best]++
		}
	}
	return s
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
	var s []string
	for _, d := range ds {
		s = append(s, Round(d))
	}
	return strings.Join(s, ", ")
}
