package workers

import (
	"time"

	"github.com/batonhq/baton/internal/sdnotify"
)

// Request reporting, baton's sd_notify extension (docs/protocol.md): a
// worker that sends X_BATON_REQUEST_BEGIN=ID when a request starts and
// X_BATON_REQUEST_END=ID when it ends gets the request clock. IDs are opaque
// to baton and only need to be unique among the worker's requests in flight.
const (
	FieldRequestBegin = "X_BATON_REQUEST_BEGIN"
	FieldRequestEnd   = "X_BATON_REQUEST_END"
)

// maxRequestsTracked bounds the requests tracked per worker, so a worker
// that never sends END cannot grow baton's memory without bound.
const maxRequestsTracked = 4096

// maxRequestID bounds one ID.
const maxRequestID = 256

// requestSet is a worker's requests in flight, in the order they began:
// begin, end and oldest each cost O(1) whatever the number in flight, as a
// map into a doubly linked list (requests begin in time order, since the
// loop stamps them as it reads them).
type requestSet struct {
	byID       map[string]*request
	head, tail *request
}

type request struct {
	id         string
	start      time.Time
	pid        int // who began it: the process the request clock accuses
	prev, next *request
}

func (r *requestSet) len() int { return len(r.byID) }

// begin records a request; one already in flight under id starts over.
func (r *requestSet) begin(id string, t time.Time) { r.beginBy(id, t, 0) }

func (r *requestSet) beginBy(id string, t time.Time, pid int) {
	if r.byID == nil {
		r.byID = map[string]*request{}
	}
	if old, ok := r.byID[id]; ok {
		r.unlink(old)
	}
	q := &request{id: id, start: t, pid: pid, prev: r.tail}
	if r.tail != nil {
		r.tail.next = q
	} else {
		r.head = q
	}
	r.tail = q
	r.byID[id] = q
}

func (r *requestSet) end(id string) {
	if q, ok := r.byID[id]; ok {
		r.unlink(q)
	}
}

func (r *requestSet) unlink(q *request) {
	if q.prev != nil {
		q.prev.next = q.next
	} else {
		r.head = q.next
	}
	if q.next != nil {
		q.next.prev = q.prev
	} else {
		r.tail = q.prev
	}
	delete(r.byID, q.id)
}

// oldestPID is who began the longest-running request in flight.
func (r *requestSet) oldestPID() int {
	if r.head == nil {
		return 0
	}
	return r.head.pid
}

// oldest returns the longest-running request in flight.
func (r *requestSet) oldest() (string, time.Time) {
	if r.head == nil {
		return "", time.Time{}
	}
	return r.head.id, r.head.start
}

// onRequests applies the message's request fields in order.
func (s *Supervisor) onRequests(w *worker, m *sdnotify.Message, sender int, now time.Time) {
	for _, f := range m.Extra {
		switch f.Key {
		case FieldRequestBegin:
			if len(f.Value) > maxRequestID {
				s.countDrop(w.pid, dropMalformed, "request id longer than 256 bytes")
				continue
			}
			if w.reqs.len() >= maxRequestsTracked {
				s.countDrop(w.pid, dropFlood, "more than 4096 requests in flight")
				continue
			}
			first := w.reqs.len() == 0
			w.reqs.beginBy(f.Value, now, sender)
			if first && w.state == Ready {
				s.armEarlier(&w.alarm, addClock(now, w.cfg.RequestTimeout))
			}
		case FieldRequestEnd:
			// The clock is lazy: the worker's alarm, when it goes off,
			// looks at the oldest request still in flight.
			w.reqs.end(f.Value)
		}
	}
}
