package contain

import (
	"os"
	"testing"
)

// What the supervisor pays per worker: Memory every memory poll, Owner
// for every notify datagram.

func benchCell(b *testing.B, c Cell, s Strategy) {
	w, err := spawn(c, "stay", 1)
	if err != nil {
		b.Fatal(err)
	}
	defer w.stop(c)
	b.Run("Memory", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Memory(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("OwnerWorker", func(b *testing.B) {
		for b.Loop() {
			if _, ok := s.Owner(w.cmd.Process.Pid); !ok {
				b.Fatal("no owner")
			}
		}
	})
	b.Run("OwnerGrandchild", func(b *testing.B) {
		for b.Loop() {
			if _, ok := s.Owner(w.gc); !ok {
				b.Fatal("no owner")
			}
		}
	})
}

func BenchmarkCgroup(b *testing.B) {
	root := testRoot(b)
	s, err := newCgroupStrategy(root, nil, false)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c, err := s.New("bench", Limits{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(b.Context())
	benchCell(b, c, s)
}

func BenchmarkProcessGroup(b *testing.B) {
	// Not a subreaper: the benchmark's worker keeps its grandchild.
	s := &sessionStrategy{self: os.Getpid(), cells: map[string]*sessionCell{}, byPID: map[int]*sessionCell{}}
	c, _ := s.New("bench", Limits{})
	defer c.Close(b.Context())
	benchCell(b, c, s)
}
