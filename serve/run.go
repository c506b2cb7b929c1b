package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
)

// Run serves cfg on the listeners (every socket the service manager
// passed, when none are given) until SIGTERM or SIGINT, then drains and
// returns once drained: nil after a clean drain. A SIGINT during the drain
// (a second Ctrl-C) closes every connection at once; a repeated SIGTERM
// does not, as with uvicorn: a parent-death signal (PR_SET_PDEATHSIG)
// arrives once for each thread of the dead supervisor that exits, and
// systemd escalates with SIGKILL, never with a second SIGTERM. Programs
// that handle signals themselves use New and Serve instead, cancelling
// Serve's context to drain.
func Run(ctx context.Context, cfg Config, listeners ...net.Listener) error {
	if len(listeners) == 0 {
		set, err := Sockets()
		if err != nil {
			return err
		}
		if listeners, err = set.AllListeners(); err != nil {
			return err
		}
		if len(listeners) == 0 {
			return fmt.Errorf("serve: no listeners given, and %s", set.none)
		}
	}
	s, err := New(cfg)
	if err != nil {
		return errors.Join(err, closeAll(listeners))
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	// A worker whose supervisor died (kill -9, under ExitType=cgroup) is
	// told to drain, and its stdout and stderr are pipes to the dead
	// supervisor: without this, Go kills the program with SIGPIPE at its
	// first log line, and the requests it was finishing fail. With it, the
	// write fails with EPIPE and the drain goes on. (Notify, not Ignore:
	// an ignored SIGPIPE would pass to the programs the worker executes.)
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, syscall.SIGPIPE)
	defer signal.Stop(pipes)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan struct{})
	defer close(served)
	go func() {
		select {
		case <-served:
			return
		case <-ctx.Done():
		case sig := <-sigs:
			s.log.Info("serve: draining on " + sig.String())
			cancel()
		}
		for {
			select {
			case <-served:
				return
			case <-s.force:
				return
			case sig := <-sigs:
				if sig == syscall.SIGTERM {
					continue // already draining
				}
				s.log.Warn("serve: " + sig.String() + " while draining; closing every connection now")
				_ = s.Close() // its error says only that listeners were closed already
				return
			}
		}
	}()
	return s.Serve(ctx, listeners...)
}

func closeAll(ls []net.Listener) error {
	var errs []error
	for _, l := range ls {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}
