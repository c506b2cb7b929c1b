package workers

import (
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// upwardQueue sends baton's own notifications to systemd from a goroutine
// of its own, so that a NOTIFY_SOCKET nobody reads (a wedged manager, a
// full queue) never blocks the loop, and through it the workers whose
// datagrams it reads. STATUS= and WATCHDOG=1 are coalesced: only the
// latest STATUS= and one WATCHDOG=1 wait at a time; everything else keeps
// its order. The Notifier bounds each send (sdnotify.Sender has a
// timeout); a send that fails is logged at a limited rate and dropped.
type upwardQueue struct {
	n   Notifier
	log logrus.FieldLogger

	mu      sync.Mutex
	msgs    []upItem
	kick    chan struct{}
	closed  bool
	done    chan struct{}
	failed  int
	lastLog time.Time
}

// upwardMax bounds the queue; beyond it, the oldest coalescable messages
// go first.
const upwardMax = 1024

func newUpwardQueue(n Notifier, log logrus.FieldLogger) *upwardQueue {
	q := &upwardQueue{n: n, log: log, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go q.run()
	return q
}

// upItem is a message, or another call to the manager (the fd store).
type upItem struct {
	msg string
	do  func() error
}

func coalescable(m string) bool { return isStatus(m) || m == "WATCHDOG=1" }
func isStatus(m string) bool    { return strings.HasPrefix(m, "STATUS=") && !strings.Contains(m, "\n") }

func (q *upwardQueue) send(m string) { q.push(upItem{msg: m}) }

// call queues f, which talks to the manager, behind what is queued. It
// says false, and f never runs, once the queue is closed.
func (q *upwardQueue) call(f func() error) bool { return q.push(upItem{do: f}) }

func (q *upwardQueue) push(it upItem) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	if m := it.msg; it.do == nil && coalescable(m) {
		for i, old := range q.msgs {
			if old.do == nil && ((isStatus(m) && isStatus(old.msg)) || (m == "WATCHDOG=1" && old.msg == "WATCHDOG=1")) {
				q.msgs[i] = it
				return true
			}
		}
	}
	if len(q.msgs) >= upwardMax {
		for i, old := range q.msgs {
			if old.do == nil && coalescable(old.msg) {
				q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
				break
			}
		}
	}
	q.msgs = append(q.msgs, it)
	select {
	case q.kick <- struct{}{}:
	default:
	}
	return true
}

func (q *upwardQueue) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		if len(q.msgs) == 0 {
			closed := q.closed
			q.mu.Unlock()
			if closed {
				return
			}
			<-q.kick
			continue
		}
		it := q.msgs[0]
		q.msgs = q.msgs[1:]
		q.mu.Unlock()
		var err error
		if it.do != nil {
			err = it.do()
		} else {
			err = q.n.Send(it.msg)
		}
		if err != nil {
			q.failed++
			if time.Since(q.lastLog) > 10*time.Second {
				q.lastLog = time.Now()
				q.log.WithError(err).WithField("failed_total", q.failed).Warn("notify systemd: message dropped")
			}
		}
	}
}

// close sends what is queued, for at most wait, and stops.
func (q *upwardQueue) close(wait time.Duration) {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
	select {
	case <-q.done:
	case <-time.After(wait):
		q.log.Warnf("notify systemd: gave up flushing after %s", wait)
	}
}
