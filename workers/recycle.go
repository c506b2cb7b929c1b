package workers

import (
	"fmt"
	"math/rand/v2"
	"time"
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

// memoryPoll is how often memory is read for max-memory.
const memoryPoll = time.Second

func jittered(limit time.Duration) time.Duration {
	return limit - time.Duration(rand.Float64()*recycleJitter*float64(limit))
}

// recycleLimits sets a new worker's own recycling limits.
func (s *Supervisor) recycleLimits(w *worker) {
	w.recycleAt = addClock(w.spawned, w.cfg.MaxLifetime)
	if !w.recycleAt.IsZero() {
		w.recycleAt = w.spawned.Add(jittered(w.cfg.MaxLifetime))
	}
	if w.cfg.MaxMemory > 0 {
		w.maxRSS = w.cfg.MaxMemory - int64(rand.Float64()*recycleJitter*float64(w.cfg.MaxMemory))
		if s.memAlarm.index < 0 {
			s.arm(&s.memAlarm, s.now().Add(memoryPoll))
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
	s.recycleStep()
}

// pollMemory reads every limited worker's memory (children included).
func (s *Supervisor) pollMemory(now time.Time) {
	limited := false
	for _, sl := range s.slots {
		w := sl.w
		if w == nil || w.maxRSS == 0 {
			continue
		}
		limited = true
		if w.state != Ready || sl.recycle != "" {
			continue
		}
		if mem, err := w.proc.Memory(); err == nil && mem > w.maxRSS {
			s.wantRecycle(w, fmt.Sprintf("memory %dMiB over max-memory %dMiB", mem>>20, w.cfg.MaxMemory>>20))
		}
	}
	if limited {
		s.arm(&s.memAlarm, now.Add(memoryPoll))
	}
}

// recycleStep boots replacements for slots marked for recycling, at most
// surge at once; none while a rollout replaces everyone anyway.
func (s *Supervisor) recycleStep() {
	if s.rollout != nil || s.phase != phaseRunning {
		return
	}
	now := s.now()
	for _, sl := range s.slots {
		if s.nNext >= s.cfg.Surge {
			return
		}
		if sl.recycle == "" || sl.next != nil || sl.w == nil {
			continue
		}
		if now.Before(sl.recycleAfter) {
			s.armEarlier(&sl.alarm, sl.recycleAfter)
			continue
		}
		w, err := s.spawn(sl.n, sl.gen, sl.cfg, sl.sockets)
		if err != nil {
			s.log.WithField("worker", sl.n).Error(err)
			sl.recycleAfter = now.Add(backoff(sl.failures + 1))
			s.arm(&sl.alarm, sl.recycleAfter)
			continue
		}
		sl.next = w
		s.nNext++
	}
}

// promoteRecycled hands a slot to its ready replacement.
func (s *Supervisor) promoteRecycled(sl *slot) {
	old := sl.w
	sl.w, sl.next = sl.next, nil
	s.nNext--
	reason := sl.recycle
	sl.recycle, sl.recycleAfter = "", time.Time{}
	s.disarm(&sl.alarm)
	s.recycled++
	if old != nil {
		s.retire(old, StopRecycled, "recycled: "+reason)
	}
	s.recycleStep()
}

// nextFailed handles a replacement that died or missed a clock before it
// was ready.
func (s *Supervisor) nextFailed(sl *slot, w *worker, f *WorkerFailure) {
	if r := s.rollout; r != nil && w.gen == r.gen {
		s.rolloutFailed(f)
		return
	}
	sl.failures++
	d := backoff(sl.failures)
	sl.recycleAfter = s.now().Add(d)
	s.arm(&sl.alarm, sl.recycleAfter)
	s.workerLog(w).Errorf("recycling worker %d failed: %v; the current worker keeps serving, next try in %s", sl.n, f, d)
	s.recycleStep()
}

// cancelRecycles stops replacements in flight, for a reload that replaces
// every worker anyway.
func (s *Supervisor) cancelRecycles() {
	for _, sl := range s.slots {
		sl.recycle, sl.recycleAfter = "", time.Time{}
		if nw := sl.next; nw != nil {
			sl.next = nil
			s.nNext--
			s.retire(nw, StopCancelled, "recycling cancelled by a reload")
		}
	}
}
