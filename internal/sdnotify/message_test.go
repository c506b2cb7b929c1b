package sdnotify

import (
	"strings"
	"testing"
	"time"
)

func TestParseFields(t *testing.T) {
	m, err := Parse([]byte("READY=1\nSTATUS=serving 3 clients\nMAINPID=42\nERRNO=5\nWATCHDOG=1\nWATCHDOG_USEC=2000000\nEXTEND_TIMEOUT_USEC=500\nX_BATON_REQUEST=begin\nCUSTOM=x=y\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !m.Ready || !m.Watchdog || m.Stopping {
		t.Errorf("flags: %+v", m)
	}
	if *m.Status != "serving 3 clients" || *m.MainPID != 42 || *m.Errno != 5 {
		t.Errorf("values: status=%q mainpid=%d errno=%d", *m.Status, *m.MainPID, *m.Errno)
	}
	if *m.WatchdogUSec != 2*time.Second || *m.ExtendTimeoutUSec != 500*time.Microsecond {
		t.Errorf("durations: %v %v", *m.WatchdogUSec, *m.ExtendTimeoutUSec)
	}
	if v, ok := m.Get("X_BATON_REQUEST"); !ok || v != "begin" {
		t.Errorf("X_ field: %q %v", v, ok)
	}
	if v, _ := m.Get("CUSTOM"); v != "x=y" {
		t.Errorf("unknown field keeps value after first '=': %q", v)
	}
}

func TestParseLaterAssignmentWins(t *testing.T) {
	m, err := Parse([]byte("STATUS=a\nSTATUS=b"))
	if err != nil || *m.Status != "b" {
		t.Fatalf("got %v, %v", m, err)
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"\n\n", "empty"},
		{"READY", "not KEY=VALUE"},
		{"=1", "not KEY=VALUE"},
		{"READY=yes", "READY=\"yes\": want 1"},
		{"MAINPID=abc", "MAINPID"},
		{"MAINPID=-3", "MAINPID"},
		{"ERRNO=x", "ERRNO"},
		{"WATCHDOG=2", "want 1 or trigger"},
		{"WATCHDOG_USEC=0", "positive count"},
		{"EXTEND_TIMEOUT_USEC=1e6", "EXTEND_TIMEOUT_USEC"},
		{"STATUS=\xff", "UTF-8"},
		{"STATUS=a\x00b", "NUL"},
		{strings.Repeat("X", MaxMessageSize+1), "exceeds"},
	} {
		_, err := Parse([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", truncate(tc.in), err, tc.want)
		}
	}
}

func TestParseWatchdogTrigger(t *testing.T) {
	m, err := Parse([]byte("WATCHDOG=trigger"))
	if err != nil || !m.WatchdogTrigger || m.Watchdog {
		t.Fatalf("got %+v, %v", m, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("READY=1\nSTATUS=x"))
	f.Add([]byte("MAINPID=1\nX_A=b\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if (m == nil) == (err == nil) {
			t.Fatalf("Parse returned message %v and error %v", m, err)
		}
	})
}
