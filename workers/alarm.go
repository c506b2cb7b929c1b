package workers

import (
	"container/heap"
	"time"
)

// An alarm is one armed clock: a worker's (its state's deadline), a slot's
// (respawn, recycling retry), a rollout's (canary and settle windows) or
// the pool's own (systemd's watchdog, stop extensions, memory polling).
// All live in one heap, so finding the next deadline and re-arming one
// cost O(log n) in the number of workers, never a scan of the pool.
type alarm struct {
	at    time.Time
	index int // in the heap; -1 when not armed
	fire  func(now time.Time)
}

func newAlarm(fire func(time.Time)) alarm { return alarm{index: -1, fire: fire} }

type alarmHeap []*alarm

func (h alarmHeap) Len() int           { return len(h) }
func (h alarmHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h alarmHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *alarmHeap) Push(x any) {
	a := x.(*alarm)
	a.index = len(*h)
	*h = append(*h, a)
}
func (h *alarmHeap) Pop() any {
	old := *h
	a := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	a.index = -1
	return a
}

// arm sets a to go off at t; the zero time disarms it.
func (s *Supervisor) arm(a *alarm, t time.Time) {
	if t.IsZero() {
		s.disarm(a)
		return
	}
	a.at = t
	if a.index >= 0 {
		heap.Fix(&s.alarms, a.index)
		return
	}
	heap.Push(&s.alarms, a)
}

// armEarlier moves a forward to t if t comes first (or a is not armed).
func (s *Supervisor) armEarlier(a *alarm, t time.Time) {
	if t.IsZero() || (a.index >= 0 && !t.Before(a.at)) {
		return
	}
	s.arm(a, t)
}

func (s *Supervisor) disarm(a *alarm) {
	if a.index >= 0 {
		heap.Remove(&s.alarms, a.index)
	}
}

// nextAlarm is when the earliest alarm goes off; zero when none is armed.
func (s *Supervisor) nextAlarm() time.Time {
	if len(s.alarms) == 0 {
		return time.Time{}
	}
	return s.alarms[0].at
}

// fireAlarms runs every alarm due at now, earliest first. An alarm's
// handler may re-arm it or others.
func (s *Supervisor) fireAlarms(now time.Time) {
	for len(s.alarms) > 0 && !s.alarms[0].at.After(now) {
		a := heap.Pop(&s.alarms).(*alarm)
		a.fire(now)
	}
}
