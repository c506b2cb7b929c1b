package load

import (
	"bufio"
	"context"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Load is a run under way.
type Load struct {
	o     Options
	t     target
	req   []byte
	begin time.Time
	every time.Duration // between scheduled starts at a fixed rate

	stop     chan struct{}
	stopOnce sync.Once
	stopAt   time.Time // when stop closed; read after done
	done     chan struct{}

	ok, failed atomic.Int64
	started    atomic.Int64 // requests started (closed loop) or slots taken (fixed rate)
	conns      atomic.Int64

	mu      sync.Mutex
	records []Record
	result  *Result
}

// Run runs a load to its end (Duration, Requests or ctx) and returns its
// records.
func Run(ctx context.Context, o Options) (*Result, error) {
	l, err := Start(ctx, o)
	if err != nil {
		return nil, err
	}
	return l.Wait(), nil
}

// Start starts a load in the background. It ends when Duration has
// passed, Requests have started, ctx ends or Stop is called: from then on
// no request starts, and the requests in flight finish (each within
// Timeout) and are recorded.
func Start(ctx context.Context, o Options) (*Load, error) {
	t, err := o.resolve()
	if err != nil {
		return nil, err
	}
	l := &Load{o: o, t: t, req: request(t.path, t.host, o.KeepAlive), stop: make(chan struct{}), done: make(chan struct{})}
	if o.Rate > 0 {
		l.every = time.Duration(float64(time.Second) / o.Rate)
	}
	l.begin = time.Now()
	var wg sync.WaitGroup
	for i := 0; i < o.Clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.client()
		}()
	}
	go func() {
		var timeout <-chan time.Time
		if o.Duration > 0 {
			t := time.NewTimer(o.Duration)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ctx.Done():
		case <-timeout:
		case <-l.stop:
		}
		l.halt()
	}()
	go func() {
		wg.Wait()
		l.halt() // Requests reached: every client has returned
		l.finish()
		close(l.done)
	}()
	return l, nil
}

// OK is how many requests have succeeded so far.
func (l *Load) OK() int64 { return l.ok.Load() }

// Failed is how many requests have failed so far.
func (l *Load) Failed() int64 { return l.failed.Load() }

// Stop ends the run and waits for the requests in flight.
func (l *Load) Stop() *Result {
	l.halt()
	return l.Wait()
}

// Wait waits for the run to end by itself and returns its records.
func (l *Load) Wait() *Result {
	<-l.done
	return l.result
}

func (l *Load) halt() {
	l.stopOnce.Do(func() {
		l.stopAt = time.Now()
		close(l.stop)
	})
}

func (l *Load) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *Load) finish() {
	sort.Slice(l.records, func(i, j int) bool { return l.records[i].Start.Before(l.records[j].Start) })
	r := &Result{Begin: l.begin, End: l.stopAt, Records: l.records}
	if l.every > 0 {
		// The slots due before the stop that no client was free to start.
		due := int64(l.stopAt.Sub(l.begin)/l.every) + 1
		if l.o.Requests > 0 && due > int64(l.o.Requests) {
			due = int64(l.o.Requests)
		}
		if l.o.Duration > 0 {
			if max := int64((l.o.Duration-1)/l.every) + 1; due > max {
				due = max
			}
		}
		if n := due - int64(len(l.records)); n > 0 {
			r.Missed = int(n)
		}
	}
	l.result = r
}

// client runs requests one after another on its own connection, and adds
// its records to the run's when the run ends.
func (l *Load) client() {
	c := &conn{l: l}
	var recs []Record
	defer func() {
		c.close()
		l.mu.Lock()
		l.records = append(l.records, recs...)
		l.mu.Unlock()
	}()
	for {
		start, ok := l.next()
		if !ok {
			return
		}
		rec := c.do(start)
		if rec.Kind == OK {
			l.ok.Add(1)
		} else {
			l.failed.Add(1)
		}
		recs = append(recs, rec)
		if l.o.Progress != nil {
			l.o.Progress(rec)
		}
	}
}

// next waits for the client's next request and returns when its latency
// counts from: now in a closed loop, the scheduled start at a fixed rate.
func (l *Load) next() (time.Time, bool) {
	if l.stopped() {
		return time.Time{}, false
	}
	n := l.started.Add(1) - 1
	if l.o.Requests > 0 && n >= int64(l.o.Requests) {
		return time.Time{}, false
	}
	if l.every == 0 {
		return time.Now(), true
	}
	at := l.begin.Add(time.Duration(n) * l.every)
	if l.o.Duration > 0 && at.Sub(l.begin) >= l.o.Duration {
		return time.Time{}, false
	}
	if wait := time.Until(at); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-l.stop:
			return time.Time{}, false
		}
	}
	// A client that was busy past the slot starts it late, unless the
	// run has ended meanwhile (then the slot is Missed).
	return at, !l.stopped()
}

// conn is a client's connection, kept between requests with keep-alive.
type conn struct {
	l  *Load
	id int64
	nc net.Conn
	br *bufio.Reader
}

func (c *conn) close() {
	if c.nc != nil {
		_ = c.nc.Close()
		c.nc = nil
	}
}

// do sends one request and reads its answer, once: a request that fails
// on a reused connection is a failure like any other.
func (c *conn) do(start time.Time) (rec Record) {
	o := &c.l.o
	rec.Start = start
	defer func() { rec.Latency = time.Since(start) }()
	fail := func(e *Error) Record {
		c.close()
		rec.Kind, rec.Err = e.Kind, e
		return rec
	}
	now := time.Now()
	if c.nc != nil {
		rec.Reused = true
	} else {
		d := net.Dialer{Timeout: o.DialTimeout}
		nc, err := d.Dial("tcp", c.l.t.addr)
		if err != nil {
			return fail(newError("dial", err))
		}
		c.nc, c.id = nc, c.l.conns.Add(1)
		if c.br == nil {
			c.br = bufio.NewReaderSize(nc, maxLine)
		} else {
			c.br.Reset(nc)
		}
	}
	rec.Conn = c.id
	if err := c.nc.SetDeadline(now.Add(o.Timeout)); err != nil {
		return fail(newError("write", err))
	}
	if _, err := c.nc.Write(c.l.req); err != nil {
		return fail(newError("write", err))
	}
	resp, e := readResponse(c.br, o.BodyLine)
	rec.Status = resp.status
	if o.BodyLine {
		rec.Line = string(resp.line)
	}
	if e != nil {
		return fail(e)
	}
	if !resp.keep || !o.KeepAlive {
		c.close()
	}
	if resp.status < 200 || resp.status > 299 {
		rec.Kind, rec.Err = Non2xx, &Error{Kind: Non2xx, Op: "status", Err: StatusError(resp.status)}
	}
	return rec
}
