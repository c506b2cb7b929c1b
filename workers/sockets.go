package workers

import (
	"fmt"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/fdutil"
	"golang.org/x/sys/unix"
)

// Sockets held by baton are closed once no current or live worker's set has
// them: a reload that drops a socket leaves it to the old workers until
// they drained.

// notIn returns the sockets of a that b lacks.
func (s *Supervisor) notIn(a, b activation.Set) activation.Set {
	in := map[*activation.Socket]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out activation.Set
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}

func (s *Supervisor) closeSockets(set activation.Set) {
	for _, sock := range set {
		s.held = removeSocket(s.held, sock)
		if s.phase == phaseRunning && !s.named(sock.Name) {
			s.unstore(sock.Name)
		}
		if s.phase == phaseRunning {
			s.log.WithField("socket", sock.Name).Infof("closing socket %s (%s)", sock.Name, sock.Addr)
		}
		if err := sock.Close(); err != nil {
			s.log.WithError(err).Warn("close socket")
		}
	}
}

// closeUnusedSockets closes held sockets that neither the current set, a
// rollout, nor a live worker uses any more.
func (s *Supervisor) closeUnusedSockets() {
	used := map[*activation.Socket]bool{}
	mark := func(set activation.Set) {
		for _, x := range set {
			used[x] = true
		}
	}
	mark(s.sockets)
	if s.rollout != nil {
		mark(s.rollout.sockets)
	}
	if s.queued != nil {
		mark(s.queued.sockets)
	}
	for _, w := range s.byPID {
		mark(w.sockets)
	}
	var unused activation.Set
	for _, x := range s.held {
		if !used[x] {
			unused = append(unused, x)
		}
	}
	s.closeSockets(unused)
}

// hold records every socket the supervisor has been given, so that each is
// closed exactly once.
func (s *Supervisor) hold(set activation.Set) {
	for _, x := range set {
		found := false
		for _, h := range s.held {
			found = found || h == x
		}
		if !found {
			s.held = append(s.held, x)
		}
	}
}

func removeSocket(set activation.Set, x *activation.Socket) activation.Set {
	out := set[:0]
	for _, y := range set {
		if y != x {
			out = append(out, y)
		}
	}
	return out
}

// named reports whether the current set (or a rollout's) has a socket
// called name.
func (s *Supervisor) named(name string) bool {
	for _, x := range s.sockets {
		if x.Name == name {
			return true
		}
	}
	if s.rollout != nil {
		for _, x := range s.rollout.sockets {
			if x.Name == name {
				return true
			}
		}
	}
	return false
}

// storeNew hands the sockets a reload bound to the fd store. A socket that
// moved (same name, new address) first drops the old entry, so that a
// restart does not bring back both.
func (s *Supervisor) storeNew(old, next activation.Set) {
	if s.store == nil {
		return
	}
	for _, x := range s.notIn(next, old) {
		if x.Origin != activation.Bound {
			continue
		}
		for _, o := range old {
			if o.Name == x.Name {
				s.unstore(x.Name)
				break
			}
		}
		s.storeSocket(x)
	}
}

// storeSocket hands a copy of x to the fd store, from the upward queue's
// goroutine: a wedged manager must not block the loop.
func (s *Supervisor) storeSocket(x *activation.Socket) {
	fd, err := fdutil.Raw(x.File)
	if err == nil {
		fd, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	}
	if err != nil {
		s.log.WithError(err).Warnf("socket %s: fd store", x.Name)
		return
	}
	name := x.Name
	s.upward.call(func() error {
		err := s.store.FDStore(name, fd)
		if cerr := unix.Close(fd); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("socket %s: fd store: %w", name, err)
		}
		return nil
	})
}

func (s *Supervisor) unstore(name string) {
	if s.store == nil {
		return
	}
	s.upward.call(func() error {
		if err := s.store.FDStoreRemove(name); err != nil {
			return fmt.Errorf("socket %s: remove from the fd store: %w", name, err)
		}
		return nil
	})
	s.log.Infof("socket %s: asked systemd to drop it from the fd store", name)
}
