package control

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

const hostile = "\x1b]0;owned\x07\x1b[2J\tfake\u009b31m\x7f\xff\u202e"

func TestWriteTableEscapesWorkerText(t *testing.T) {
	st := &Status{
		Status: "2/2 workers ready, generation 1", PID: 1, Version: "baton test",
		Pool:    []WorkerStatus{{Slot: 1, PID: 10, State: "ready", Status: hostile}, {Slot: 2, PID: 11, State: "ready", Status: "fine"}},
		Reloads: []ReloadStatus{{Generation: 2, Error: "worker 1 of generation 2 exited with status 1 before ready (" + hostile + ")"}},
	}
	var b bytes.Buffer
	if err := st.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !utf8.ValidString(out) {
		t.Errorf("output is not UTF-8: %q", out)
	}
	for _, r := range out {
		if (r < ' ' && r != '\n') || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e' {
			t.Fatalf("control character %U reached the table:\n%q", r, out)
		}
	}
	want := `\x1b]0;owned\x07\x1b[2J\tfake\u009b31m\x7f\xff\u202e`
	if strings.Count(out, want) != 2 {
		t.Errorf("worker text not shown escaped as %s:\n%s", want, out)
	}
	// The tab in the worker's text did not add a column: both worker rows
	// have their STATUS in the same column.
	lines := strings.Split(out, "\n")
	col := func(prefix string, text string) int {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return strings.Index(l, text)
			}
		}
		return -1
	}
	if a, b := col("1 ", `\x1b`), col("2 ", "fine"); a < 0 || a != b {
		t.Errorf("STATUS columns %d and %d differ:\n%s", a, b, out)
	}
}

type hostileHandler struct{ fakeHandler }

func (hostileHandler) Reload(context.Context, bool) (string, error) {
	return "", errors.New("worker 1 failed (" + hostile + ")\nsecond line")
}

func TestCallEscapesAnswers(t *testing.T) {
	path := serve(t, hostileHandler{})
	_, err := Call(context.Background(), path, Request{Command: "reload"})
	if err == nil || strings.ContainsAny(err.Error(), "\x1b\x07\t\x7f\u009b\u202e") || !utf8.ValidString(err.Error()) {
		t.Fatalf("error reached the caller unescaped: %q", err)
	}
	if !strings.Contains(err.Error(), `(\x1b]0;owned`) || !strings.HasSuffix(err.Error(), ")\nsecond line") {
		t.Errorf("error %q: want the text escaped and its lines kept", err)
	}
}
