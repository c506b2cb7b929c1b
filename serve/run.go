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
// returns once drained: nil after a clean drain. A second signal during the
// drain closes every connection at once. Programs that handle signals
// themselves use New and Serve instead, cancelling Serve's context to
// drain.
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
		select {
		case <-served:
		case <-s.force:
		case sig := <-sigs:
			s.log.Warn("serve: second " + sig.String() + "; closing every connection now")
			_ = s.Close() // its error says only that listeners were closed already
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
