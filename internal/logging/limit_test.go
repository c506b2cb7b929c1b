package logging

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := NewLimiter(3, time.Second)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	passed := 0
	for i := 0; i < 1000; i++ {
		if ok, _ := l.Allow(); ok {
			passed++
		}
	}
	if passed != 3 {
		t.Fatalf("a burst of 1000 let %d through, want 3", passed)
	}
	now = now.Add(1500 * time.Millisecond)
	ok, suppressed := l.Allow()
	if !ok || suppressed != 997 {
		t.Errorf("after 1.5s: ok %v, suppressed %d; want true, 997", ok, suppressed)
	}
	if ok, _ := l.Allow(); ok {
		t.Error("half a token let a message through")
	}
	now = now.Add(time.Hour)
	for i := 0; i < 3; i++ {
		if ok, s := l.Allow(); !ok || (i == 0) != (s == 1) {
			t.Errorf("after an hour, message %d: ok %v suppressed %d", i, ok, s)
		}
	}
	if ok, _ := l.Allow(); ok {
		t.Error("tokens grew past the burst")
	}
}
