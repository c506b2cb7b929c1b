package serve

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testutil"
	"github.com/batonhq/baton/scoreboard"
	"golang.org/x/sys/unix"
)

// passBoard makes a board and passes it to this process as baton would,
// under BATON_SCOREBOARD_FD (a copy of the fd, which New takes and closes).
func passBoard(t *testing.T) (*scoreboard.Board, int) {
	t.Helper()
	b, err := scoreboard.Create(scoreboard.DefaultSlots)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	fd, err := unix.Dup(int(b.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(scoreboard.EnvFD, strconv.Itoa(fd))
	return b, fd
}

func closedFD(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return errors.Is(err, unix.EBADF)
}

func TestReportsThroughTheScoreboard(t *testing.T) {
	testutil.CheckFDLeaks(t)
	b, fd := passBoard(t)
	h := newTestHandler()
	r := start(t, Config{Handler: h, RequestTimeout: 100 * time.Millisecond})
	if _, ok := os.LookupEnv(scoreboard.EnvFD); ok || !closedFD(fd) {
		t.Errorf("%s left set or its fd %d open", scoreboard.EnvFD, fd)
	}
	if r.s.rep.mode != ReportsScoreboard || b.Writer() != os.Getpid() {
		t.Fatalf("mode %s, writer %d", r.s.rep.mode, b.Writer())
	}
	c := dial(t, r.addr)
	c.mustGet("/")
	if _, ok := b.Oldest(); ok {
		t.Error("a finished request is still on the board")
	}
	// Answered 504 at its deadline, the wedged request stays on the board
	// until its handler returns: that is what baton's request clock needs.
	if resp, _, err := c.get("/block?x=1"); err != nil || resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("%v %v", resp, err)
	}
	req, ok := b.Oldest()
	if !ok || req.Label != "GET /block?x=1" || time.Since(req.Start) < 100*time.Millisecond {
		t.Errorf("on the board: %+v %v", req, ok)
	}
	close(h.release)
	eventually(t, "the board to empty", func() bool { return b.InFlight() == 0 })
}

func TestReportsWithDatagrams(t *testing.T) {
	t.Setenv(EnvReports, "notify")
	m := newManager(t)
	r := start(t, Config{Handler: newTestHandler(), Notifier: m.notifier(t)})
	c := dial(t, r.addr)
	c.mustGet("/a?b=c")
	c.mustGet("/")
	for _, want := range []string{
		"X_BATON_REQUEST_BEGIN=1 GET /a?b=c", "X_BATON_REQUEST_END=1 GET /a?b=c",
		"X_BATON_REQUEST_BEGIN=2 GET /", "X_BATON_REQUEST_END=2 GET /",
	} {
		if got := m.waitFor(t, "X_BATON_REQUEST_", 10*time.Second); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestRequestIDsAreWhatBatonAccepts(t *testing.T) {
	r := httptest.NewRequest("GET", "/x", nil)
	r.RequestURI = "/" + strings.Repeat("é", 200) + "\xff"
	id := requestID(7, r)
	if len(id) > maxRequestID || !strings.HasPrefix(id, "7 GET /é") || !utf8Valid(id) {
		t.Errorf("id %q (%d bytes)", id, len(id))
	}
	r.RequestURI = "/bad\xffbyte"
	if id := requestID(8, r); id != "8 GET /bad?byte" {
		t.Errorf("id %q", id)
	}
}

// Which way requests are reported, by configuration, variable, and what
// baton passed; the board's variable and fd are taken in every case.
func TestReportsModes(t *testing.T) {
	m := newManager(t)
	for _, tc := range []struct {
		name   string
		cfg    Reports
		env    string
		board  bool
		notify bool
		want   Reports
		err    string
	}{
		{"auto with a board", ReportsAuto, "", true, true, ReportsScoreboard, ""},
		{"auto without", ReportsAuto, "", false, true, ReportsOff, ""},
		{"fallback with a board", ReportsScoreboardOrNotify, "", true, true, ReportsScoreboard, ""},
		{"fallback without", ReportsScoreboardOrNotify, "", false, true, ReportsNotify, ""},
		{"fallback with nothing", ReportsScoreboardOrNotify, "", false, false, ReportsOff, ""},
		{"notify despite a board", ReportsAuto, "notify", true, true, ReportsNotify, ""},
		{"off despite a board", ReportsScoreboard, "off", true, true, ReportsOff, ""},
		{"scoreboard required", ReportsAuto, "scoreboard", false, true, 0, "baton passed no scoreboard"},
		{"notify without a socket", ReportsNotify, "", true, false, 0, "NOTIFY_SOCKET is not set"},
		{"bad variable", ReportsAuto, "sometimes", true, true, 0, "BATON_REQUEST_REPORTS=\"sometimes\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvReports, tc.env)
			if tc.env == "" {
				os.Unsetenv(EnvReports)
			}
			t.Setenv(scoreboard.EnvFD, "")
			os.Unsetenv(scoreboard.EnvFD)
			fd := -1
			if tc.board {
				_, fd = passBoard(t)
			}
			n := &Notifier{}
			if tc.notify {
				n = m.notifier(t)
			}
			s, err := New(Config{Handler: newTestHandler(), Reports: tc.cfg, Notifier: n})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if s.rep.mode != tc.want {
				t.Errorf("mode %s, want %s", s.rep.mode, tc.want)
			}
			if tc.board && !closedFD(fd) {
				t.Errorf("board fd %d left open", fd)
			}
			if s != nil && s.rep.board != nil {
				s.rep.board.Close()
			}
		})
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }
