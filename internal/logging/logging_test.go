package logging

import (
	"bytes"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/sirupsen/logrus"
)

func TestJournalFieldNames(t *testing.T) {
	for in, want := range map[string]string{"worker": "BATON_WORKER", "pid": "BATON_WORKER_PID", "clock": "BATON_CLOCK", "sender_pid": "BATON_SENDER_PID", "a.b-c": "BATON_A_B_C"} {
		if got := JournalField(in); got != want {
			t.Errorf("JournalField(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPriorities(t *testing.T) {
	for l, want := range map[logrus.Level]journal.Priority{logrus.ErrorLevel: journal.PriErr, logrus.WarnLevel: journal.PriWarning, logrus.InfoLevel: journal.PriInfo, logrus.DebugLevel: journal.PriDebug} {
		if got := Priority(l); got != want {
			t.Errorf("Priority(%v) = %v, want %v", l, got, want)
		}
	}
}

func TestFormats(t *testing.T) {
	var b bytes.Buffer
	log, err := New("json", "info", &b)
	if err != nil {
		t.Fatal(err)
	}
	log.WithField("worker", 2).Info("hello")
	if !strings.Contains(b.String(), `"worker":2`) || !strings.Contains(b.String(), `"msg":"hello"`) {
		t.Errorf("json: %s", b.String())
	}
	if _, err := New("xml", "info", &b); err == nil || !strings.Contains(err.Error(), "want auto, text, json, journal") {
		t.Errorf("bad format: %v", err)
	}
	if _, err := New("text", "loud", &b); err == nil {
		t.Error("bad level accepted")
	}
}
