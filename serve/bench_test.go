package serve

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/batonhq/baton/scoreboard"
	"golang.org/x/sys/unix"
)

// What serve adds to a request, network aside: the handler wrapper with
// reporting off, through the scoreboard, and with a deadline (a goroutine
// and a context per request).
func BenchmarkServeHTTP(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	for _, bc := range []struct {
		name     string
		board    bool
		deadline time.Duration
	}{
		{"bare", false, 0},
		{"scoreboard", true, 0},
		{"deadline", false, time.Minute},
		{"scoreboard+deadline", true, time.Minute},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.Setenv(EnvReports, "auto")
			b.Setenv(scoreboard.EnvFD, "")
			os.Unsetenv(scoreboard.EnvFD)
			if bc.board {
				board, err := scoreboard.Create(scoreboard.DefaultSlots)
				if err != nil {
					b.Fatal(err)
				}
				defer board.Close()
				fd, err := unix.Dup(int(board.File().Fd()))
				if err != nil {
					b.Fatal(err)
				}
				b.Setenv(scoreboard.EnvFD, strconv.Itoa(fd))
			}
			s, err := New(Config{Handler: ok, RequestTimeout: bc.deadline, Notifier: &Notifier{}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.rep.board.Close()
			r := httptest.NewRequest("GET", "/api/items?page=2", nil)
			b.ReportAllocs()
			for b.Loop() {
				s.ServeHTTP(httptest.NewRecorder(), r)
			}
		})
	}
}
