package workers

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/procfs"
)

// Recycling replaces one worker with a fresh one of the same generation:
// the replacement boots beside it and the old worker drains only once the
// replacement is ready; at most surge replacements boot at once. Causes:
// max-lifetime, max-memory (both less up to 10% jitter, so that workers
// started together do not recycle together) and the worker's own request,
// X_BATON_RECYCLE=1 (say, after N requests, as gunicorn's max_requests).

// FieldRecycle is the sd_notify field with which a worker asks to be
// recycled.
const FieldRecycle = "X_BATON_RECYCLE"

// recycleJitter is the largest fraction taken off a recycling limit.
const recycleJitter = 0.1

// memoryPoll is how often resident memory is read for max-memory.
const memoryPoll = time.Second

func jittered(limit time.Duration) time.Duration {
	return limit - time.Duration(rand.Float64()*recycleJitter*float64(limit))
}

// recycleLimits sets a new worker's own recycling limits.
func (s *Supervisor) recycleLimits(w *worker) {
	if w.cfg.MaxLifetime != config.Infinity {
		w.recycleAt = w.spawned.Add(jittered(w.cfg.MaxLifetime))
	}
	if w.cfg.MaxMemory > 0 {
		w.maxRSS = w.cfg.MaxMemory - int64(rand.Float64()*recycleJitter*float64(w.cfg.MaxMemory))
		if s.nextMemoryPoll.IsZero() {
			s.nextMemoryPoll = s.now().Add(memoryPoll)
		}
	}
}

// wantRecycle marks the worker's slot for recycling, once.
func (s *Supervisor) wantRecycle(w *worker, reason string) {
	sl := s.slotOf(w)
	if sl == nil || sl.w != w || sl.recycle != "" || w.state != Ready {
		return
	}
	sl.recycle = reason
	s.workerLog(w).Infof("recycling worker %d: %s", w.slot, reason)
}

// checkRecycling looks at every ready worker's lifetime and memory.
func (s *Supervisor) checkRecycling(now time.Time) {
	pollMemory := !now.Before(s.nextMemoryPoll)
	if pollMemory {
		s.nextMemoryPoll = now.Add(memoryPoll)
	}
	for _, sl := range s.slots {
		w := sl.w
		if w == nil || w.state != Ready || sl.recycle != "" {
			continue
		}
		if !w.recycleAt.IsZero() && !now.Before(w.recycleAt) {
			s.wantRecycle(w, fmt.Sprintf("max-lifetime %s reached", config.FormatDuration(w.cfg.MaxLifetime)))
			continue
		}
		if pollMemory && w.maxRSS > 0 {
			rss, err := procfs.RSS(w.pid)
			if err == nil && rss > w.maxRSS {
				s.wantRecycle(w, fmt.Sprintf("resident memory %dMiB over max-memory %dMiB", rss>>20, w.cfg.MaxMemory>>20))
			}
		}
	}
}

// recycleDeadline is the next time checkRecycling has work.
func (s *Supervisor) recycleDeadline() time.Time {
	var next time.Time
	for _, sl := range s.slots {
		w := sl.w
		if w == nil || w.state != Ready || sl.recycle != "" {
			continue
		}
		if !w.recycleAt.IsZero() && (next.IsZero() || w.recycleAt.Before(next)) {
			next = w.recycleAt
		}
		if w.maxRSS > 0 && (next.IsZero() || s.nextMemoryPoll.Before(next)) {
			next = s.nextMemoryPoll
		}
	}
	return next
}

// advanceRecycles boots replacements for slots marked for recycling.
func (s *Supervisor) advanceRecycles() {
	now := s.now()
	inflight := 0
	for _, sl := range s.slots {
		if sl.next != nil {
			inflight++
		}
	}
	for _, sl := range s.slots {
		if inflight >= s.cfg.Surge {
			return
		}
		if sl.recycle == "" || sl.next != nil || sl.w == nil || now.Before(sl.recycleAfter) {
			continue
		}
		w, err := s.spawn(sl.n, sl.gen, sl.cfg, sl.sockets)
		if err != nil {
			s.log.WithField("worker", sl.n).Error(err)
			sl.recycleAfter = now.Add(backoff(sl.failures + 1))
			continue
		}
		sl.next = w
		inflight++
	}
}

// promoteRecycled hands a slot to its ready replacement.
func (s *Supervisor) promoteRecycled(sl *slot) {
	old := sl.w
	sl.w, sl.next = sl.next, nil
	reason := sl.recycle
	sl.recycle, sl.recycleAfter = "", time.Time{}
	s.recycled++
	if old != nil {
		old.retired = true
		s.stopWorker(old, "recycled: "+reason, Graceful)
	}
}

// nextFailed handles a replacement that died or missed a clock before it
// was ready.
func (s *Supervisor) nextFailed(sl *slot, w *worker, reason string) {
	if s.rollout != nil && w.gen == s.rollout.gen {
		s.rolloutFailed(reason)
		return
	}
	if sl.next == w {
		sl.next = nil
	}
	sl.failures++
	d := backoff(sl.failures)
	sl.recycleAfter = s.now().Add(d)
	s.workerLog(w).Errorf("recycling worker %d failed: %s; the current worker keeps serving, next try in %s", sl.n, reason, d)
}

// cancelRecycles stops replacements in flight, for a reload that replaces
// every worker anyway.
func (s *Supervisor) cancelRecycles() {
	for _, sl := range s.slots {
		sl.recycle, sl.recycleAfter = "", time.Time{}
		if nw := sl.next; nw != nil {
			sl.next = nil
			nw.retired = true
			s.stopWorker(nw, "recycling cancelled by a reload", Graceful)
		}
	}
}
