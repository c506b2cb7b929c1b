package activation

import (
	"errors"
	"fmt"

	"github.com/batonhq/baton/internal/config"
)

// Resolve combines the sockets systemd passed with the configured ones:
// a configured socket whose name systemd passed is taken from systemd (the
// .socket unit or fd store wins, so a restart keeps its connections); one
// that was not passed is bound now. Sockets systemd passed that the config
// does not name are kept, after the configured ones, so that a .socket unit
// works with no [sockets] in the config at all.
//
// Notes describe decisions worth a log line (an inherited socket whose
// address differs from the config's). On error every socket opened here is
// closed; the inherited ones are left to the caller.
func Resolve(configured []config.Socket, inherited Set) (set Set, notes []string, err error) {
	byName := map[string][]*Socket{}
	for _, s := range inherited {
		byName[s.Name] = append(byName[s.Name], s)
	}
	used := map[*Socket]bool{}
	var bound Set
	for _, c := range configured {
		if got := byName[c.Name]; len(got) > 0 {
			for _, s := range got {
				if want := c.Address.String(); s.Addr != want && !sameTCPPort0(want, s.Addr) {
					notes = append(notes, fmt.Sprintf("socket %s: using %s passed by systemd; the config's %s is ignored", c.Name, s.Addr, want))
				}
				set = append(set, s)
				used[s] = true
			}
			continue
		}
		s, err := Bind(c)
		if err != nil {
			return nil, nil, errors.Join(err, bound.Close())
		}
		bound = append(bound, s)
		set = append(set, s)
	}
	for _, s := range inherited {
		if !used[s] {
			set = append(set, s)
		}
	}
	return set, notes, nil
}

// sameTCPPort0 lets a config that asks for port 0 (any port) match whatever
// port the socket got.
func sameTCPPort0(want, got string) bool {
	if len(want) < 2 || want[len(want)-2:] != ":0" {
		return false
	}
	host := want[:len(want)-1]
	return len(got) > len(host) && got[:len(host)] == host
}

// Rebind computes the socket set for a reloaded config from the current
// one: a configured socket whose name and address are unchanged keeps its
// fd (no connection is lost); a new or moved one is bound; sockets systemd
// passed that the config does not name stay, as in Resolve. Opened lists
// the sockets bound here, which the caller closes if the set is not used.
func Rebind(configured []config.Socket, current Set) (set, opened Set, err error) {
	byName := map[string][]*Socket{}
	for _, s := range current {
		byName[s.Name] = append(byName[s.Name], s)
	}
	used := map[*Socket]bool{}
	for _, c := range configured {
		var keep []*Socket
		for _, s := range byName[c.Name] {
			if s.Origin == Inherited || s.Addr == c.Address.String() || sameTCPPort0(c.Address.String(), s.Addr) {
				keep = append(keep, s)
			}
		}
		if len(keep) > 0 {
			for _, s := range keep {
				set = append(set, s)
				used[s] = true
			}
			continue
		}
		s, err := Bind(c)
		if err != nil {
			return nil, nil, errors.Join(err, opened.Close())
		}
		opened = append(opened, s)
		set = append(set, s)
	}
	for _, s := range current {
		if !used[s] && s.Origin == Inherited {
			set = append(set, s)
		}
	}
	return set, opened, nil
}
