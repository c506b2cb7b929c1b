package workers

import (
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/config"
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

// oldestRequest returns the longest-running request in flight.
func (w *worker) oldestRequest() (string, time.Time) {
	var id string
	var oldest time.Time
	for k, t := range w.requests {
		if oldest.IsZero() || t.Before(oldest) {
			id, oldest = k, t
		}
	}
	return id, oldest
}

// onRequests applies the message's request fields in order.
func (s *Supervisor) onRequests(w *worker, m *sdnotify.Message, now time.Time) {
	for _, f := range m.Extra {
		switch f.Key {
		case FieldRequestBegin:
			if len(f.Value) > maxRequestID {
				s.countDrop(w.pid, "request id longer than 256 bytes")
				continue
			}
			if w.requests == nil {
				w.requests = map[string]time.Time{}
			}
			if len(w.requests) >= maxRequestsTracked {
				s.countDrop(w.pid, "more than 4096 requests in flight")
				continue
			}
			w.requests[f.Value] = now
		case FieldRequestEnd:
			delete(w.requests, f.Value)
		}
	}
}

// onClocks applies a message's clock fields.
func (s *Supervisor) onClocks(w *worker, m *sdnotify.Message, now time.Time) {
	if m.Watchdog {
		w.lastHeartbeat = now
	}
	if m.WatchdogUSec != nil {
		// As systemd: a new interval also restarts the clock.
		w.watchdog = *m.WatchdogUSec
		w.lastHeartbeat = now
		s.workerLog(w).Infof("worker %d set its watchdog-timeout to %s", w.slot, w.watchdog)
	}
	if m.ExtendTimeoutUSec != nil {
		until := now.Add(*m.ExtendTimeoutUSec)
		switch {
		case w.state == Starting && !w.bootDeadline.IsZero() && until.After(w.bootDeadline):
			w.bootDeadline = until
			s.workerLog(w).Debugf("worker %d extended its boot-timeout to %s from now", w.slot, *m.ExtendTimeoutUSec)
		case w.state == Stopping && w.escalated == "" && !w.killAt.IsZero() && until.After(w.killAt):
			w.killAt = until
			s.workerLog(w).Debugf("worker %d extended its graceful-timeout to %s from now", w.slot, *m.ExtendTimeoutUSec)
		}
	}
	if m.WatchdogTrigger && w.escalated == "" && w.state != Stopping {
		limit := w.watchdog
		if limit == config.Infinity {
			limit = 0
		}
		s.escalate(w, "watchdog", limit, 0, "worker sent WATCHDOG=trigger")
	}
}

func signalOf(s config.Signal) syscall.Signal { return syscall.Signal(s) }
