package workers

import (
	"context"
	"errors"
	"fmt"
)

// Scale adds (delta > 0) or drains (delta < 0) workers, as SIGTTIN and
// SIGTTOU do, within 1..max-workers.
func (s *Supervisor) Scale(ctx context.Context, delta int) error {
	req := scaleRequest{delta: delta, reply: make(chan error, 1)}
	select {
	case s.events <- req:
	case <-s.done:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-s.done:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
}

// scale adds or drains workers without replacing the others.
func (s *Supervisor) scale(delta int) error {
	switch {
	case s.phase != phaseRunning:
		return ErrStopping
	case s.rollout != nil:
		return fmt.Errorf("cannot scale now: %w", ErrReloadInProgress)
	case delta == 0:
		return errors.New("cannot scale by 0 workers")
	}
	cur, limit := s.cfg.Workers, s.cfg.MaxWorkers
	// Compared without computing cur+delta, which overflows for extreme
	// deltas.
	if delta > 0 && delta > limit-cur {
		return fmt.Errorf("%w: %d + %d workers is more than max-workers %d", ErrScaleLimit, cur, delta, limit)
	}
	if delta < 0 && delta <= -cur {
		return fmt.Errorf("%w: cannot scale below 1 worker (%d workers, asked for %d)", ErrScaleLimit, cur, delta)
	}
	n := cur + delta
	cfg := *s.cfg
	all := s.cfg.MinReady == s.cfg.Workers
	cfg.Workers = n
	if all || cfg.MinReady > n {
		cfg.MinReady = n
	}
	s.cfg = &cfg
	for _, sl := range s.slots {
		if sl.gen == s.gen {
			sl.cfg = s.cfg
		}
	}
	s.log.Infof("scaling from %d to %d workers", cur, n)
	s.statusDirty = true
	for len(s.slots) < n {
		sl := s.newSlot(len(s.slots)+1, s.gen, s.cfg, s.sockets)
		s.slots = append(s.slots, sl)
		s.start(sl)
	}
	for len(s.slots) > n {
		s.dropLastSlot(StopScaledDown, "scaled down")
	}
	return nil
}
