package scoreboard

import (
	"fmt"
	"testing"
)

// What a worker pays per request: Begin and End with a typical label.
func BenchmarkBeginEnd(b *testing.B) {
	board, err := Create(DefaultSlots)
	if err != nil {
		b.Fatal(err)
	}
	defer board.Close()
	w, err := Attach(int(board.File().Fd()))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	for b.Loop() {
		w.End(w.Begin("GET /api/v1/items?page=2"))
	}
}

// The same from every P at once, as a busy Go server does.
func BenchmarkBeginEndParallel(b *testing.B) {
	board, err := Create(DefaultSlots)
	if err != nil {
		b.Fatal(err)
	}
	defer board.Close()
	w, err := Attach(int(board.File().Fd()))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.End(w.Begin("GET /api/v1/items?page=2"))
		}
	})
}

// What baton pays to read one worker's board, half full.
func BenchmarkOldest(b *testing.B) {
	for _, n := range []int{DefaultSlots, 1023} {
		b.Run(fmt.Sprint(n, "slots"), func(b *testing.B) {
			board, err := Create(n)
			if err != nil {
				b.Fatal(err)
			}
			defer board.Close()
			w, err := Attach(int(board.File().Fd()))
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			for range n / 2 {
				w.Begin("GET /")
			}
			for b.Loop() {
				if _, ok := board.Oldest(); !ok {
					b.Fatal("no request")
				}
			}
		})
	}
}
