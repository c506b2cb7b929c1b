package main

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/batonhq/baton/workers"
	"golang.org/x/sys/unix"
)

// reloadNotifier is the supervisor's way up to systemd, watched so that a
// reload started by a signal answers as Type=notify-reload (systemd 253
// and later) requires. systemd sends SIGHUP, then waits for RELOADING=1
// with MONOTONIC_USEC= no earlier than the signal (anything else leaves the
// unit waiting until TimeoutStartSec=, and the reload fails), then for
// READY=1, which ends the reload. Neither systemd 253 to 257 nor later
// hears of a reload that failed: READY=1 ends every one the same way.
//
// The supervisor announces a rollout it begins (RELOADING=1) and ends
// (READY=1); a SIGHUP must be answered even when no rollout begins (an
// invalid config, baton stopping, an upgrade refused), so cmd/baton
// answers the signal itself at once, and sends READY=1 when the reload is
// over unless a rollout took the answer over. Under Type=notify the same pair tells
// systemd 252 and later that baton reloads by itself, which it shows.
type reloadNotifier struct {
	mu        sync.Mutex
	up        workers.Notifier // nil: not under systemd
	ready     bool             // READY=1 sent: the service has started
	reloading bool             // RELOADING=1 sent, no READY=1 since
	epoch     uint64           // RELOADING=1 messages sent
}

// Send passes state up and notes what it announced.
func (n *reloadNotifier) Send(state string, fds ...int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.send(state, fds...)
}

func (n *reloadNotifier) send(state string, fds ...int) error {
	if n.up == nil {
		return nil
	}
	if err := n.up.Send(state, fds...); err != nil {
		return err
	}
	var ready, reloading bool
	for _, line := range strings.Split(state, "\n") {
		ready = ready || line == "READY=1"
		reloading = reloading || line == "RELOADING=1"
	}
	if reloading {
		n.epoch++
	}
	// READY=1 wins over RELOADING=1 in one message, as systemd reads it.
	switch {
	case ready:
		n.ready, n.reloading = true, false
	case reloading:
		n.reloading = true
	}
	return nil
}

// begin answers a reload signal: RELOADING=1 with the time now. It returns
// the reload's epoch for end, 0 when nothing was sent (no systemd, or the
// service has not started yet: RELOADING=1 then would let a later READY=1
// count as the start).
func (n *reloadNotifier) begin() (uint64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.up == nil || !n.ready {
		return 0, nil
	}
	if err := n.send(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec())); err != nil {
		return 0, err
	}
	return n.epoch, nil
}

// end finishes the reload begin announced: READY=1, unless a rollout ran
// (rolled: it sends READY=1 itself when it ends, through the supervisor's
// queue, which may not have sent it yet), another announced itself since,
// or systemd was told already.
func (n *reloadNotifier) end(epoch uint64, rolled bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if epoch == 0 || rolled || !n.reloading || n.epoch != epoch {
		return nil
	}
	return n.send("READY=1")
}

// rolled says whether a reload's outcome comes from a rollout, which
// announced itself: done, or failed with the old generation serving.
func rolled(err error) bool { return err == nil || errors.Is(err, workers.ErrReloadFailed) }

// state is what survives an upgrade in place: whether the service has
// started, and whether a reload announced to systemd still awaits READY=1.
func (n *reloadNotifier) state() (ready, reloading bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ready, n.reloading
}

// adopt takes over the state of the image before an upgrade in place. A
// reload it announced is epoch 1 here, for end.
func (n *reloadNotifier) adopt(ready, reloading bool) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ready, n.reloading = ready, reloading
	if !reloading {
		return 0
	}
	n.epoch = 1
	return 1
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, the clock systemd
// compares MONOTONIC_USEC= with.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}
