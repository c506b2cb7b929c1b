package procstat

import (
	"os"
	"testing"
	"time"
)

// TestReadSelf reads this process, burns CPU, and reads it again.
func TestReadSelf(t *testing.T) {
	a, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if a.RSS < 1<<20 || a.Threads < 1 || a.FDs < 3 {
		t.Errorf("implausible sample of self: %+v", a)
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	n := 0
	for time.Now().Before(deadline) {
		n++
	}
	b, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if b.CPU <= a.CPU {
		t.Errorf("CPU did not grow after a busy loop (%d rounds): %s then %s", n, a.CPU, b.CPU)
	}
	if s := Share(a, b); s <= 0 || s > 64 {
		t.Errorf("share %f of one core", s)
	}
	if p, err := PSS(os.Getpid()); err != nil || p <= 0 {
		t.Errorf("PSS(self) = %d, %v", p, err)
	}
}

func TestReadGone(t *testing.T) {
	if _, err := Read(1 << 30); err == nil {
		t.Error("read a process that cannot exist")
	}
}

func TestReadMachine(t *testing.T) {
	a, err := ReadMachine()
	if err != nil {
		t.Fatal(err)
	}
	if a.Busy <= 0 || a.Total < a.Busy {
		t.Errorf("implausible machine sample: %+v", a)
	}
}
