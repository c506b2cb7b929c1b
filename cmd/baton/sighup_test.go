package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/batonhq/baton/workers"
)

type recorder struct {
	mu   sync.Mutex
	sent []string
}

func (r *recorder) Send(state string, fds ...int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, state)
	return nil
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sent
	r.sent = nil
	return out
}

func TestSignalReloadAnswersAsNotifyReloadRequires(t *testing.T) {
	rec := &recorder{}
	n := &reloadNotifier{up: rec}

	// Before the service started, a SIGHUP is not announced: a READY=1
	// that followed would count as the start.
	if e, err := n.begin(); e != 0 || err != nil || len(rec.take()) != 0 {
		t.Fatalf("announced before READY=1: %d %v", e, err)
	}
	_ = n.Send("READY=1\nSTATUS=2/2 workers ready, generation 1")
	rec.take()

	// Refused (an invalid config): RELOADING=1 at once, READY=1 at the end.
	before := monotonicUsec()
	e, err := n.begin()
	if err != nil || e == 0 {
		t.Fatal(e, err)
	}
	sent := rec.take()
	if len(sent) != 1 || !strings.HasPrefix(sent[0], "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("sent %q", sent)
	}
	if usec, err := strconv.ParseInt(strings.TrimPrefix(sent[0], "RELOADING=1\nMONOTONIC_USEC="), 10, 64); err != nil || usec < before {
		t.Errorf("MONOTONIC_USEC %q earlier than the signal (%d)", sent[0], before)
	}
	if err := n.end(e, rolled(errors.New("reload refused: invalid config"))); err != nil {
		t.Fatal(err)
	}
	if sent := rec.take(); len(sent) != 1 || sent[0] != "READY=1" {
		t.Errorf("end sent %q", sent)
	}

	// A rollout ran, done or failed: its own READY=1 ends the reload, even
	// when the supervisor's queue has not sent it yet.
	for _, err := range []error{nil, fmt.Errorf("reload to generation 3: %w", workers.ErrReloadFailed)} {
		e, _ = n.begin()
		rec.take()
		if err := n.end(e, rolled(err)); err != nil || len(rec.take()) != 0 {
			t.Errorf("READY=1 sent for a rollout (%v)", err)
		}
		_ = n.Send("RELOADING=1\nMONOTONIC_USEC=1")
		_ = n.Send("READY=1")
		rec.take()
	}

	// Another rollout that began since keeps the reload open.
	e, _ = n.begin()
	_ = n.Send("RELOADING=1\nMONOTONIC_USEC=1")
	rec.take()
	if err := n.end(e, false); err != nil || len(rec.take()) != 0 {
		t.Errorf("READY=1 sent during the rollout")
	}
	_ = n.Send("READY=1")

	// Across an upgrade in place: the new image ends the reload the old
	// one announced.
	ready, reloading := n.state()
	if !ready || reloading {
		t.Errorf("state %v %v", ready, reloading)
	}
	m := &reloadNotifier{up: rec}
	rec.take()
	if e := m.adopt(true, true); m.end(e, false) != nil || strings.Join(rec.take(), "|") != "READY=1" {
		t.Errorf("adopted reload not ended")
	}
	if e := m.adopt(true, false); e != 0 {
		t.Errorf("adopted epoch %d without a reload", e)
	}
	// Not under systemd: nothing to announce, nothing fails.
	none := &reloadNotifier{}
	if e, err := none.begin(); e != 0 || err != nil || none.end(e, false) != nil || none.Send("READY=1") != nil {
		t.Errorf("without systemd")
	}
}
