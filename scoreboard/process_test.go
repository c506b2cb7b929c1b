package scoreboard

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/batonhq/baton/internal/testutil"
)

// roleEnv makes the test binary, re-executed, play a worker.
const roleEnv = "SCOREBOARD_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "writer":
		os.Exit(writerChild())
	case "scribbler":
		os.Exit(scribblerChild())
	}
	os.Exit(m.Run())
}

// writerChild is a well-behaved worker driven line by line on stdin:
// "begin LABEL", "end", answering "ok" to each.
func writerChild() int {
	w, err := FromEnv()
	if err != nil || w == nil {
		fmt.Println("attach:", err)
		return 1
	}
	var tok Token
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "begin":
			tok = w.Begin(arg)
		case "end":
			w.End(tok)
		}
		fmt.Println("ok")
	}
	return 0
}

// scribblerChild writes garbage over its whole board, header included,
// until stdin closes: random words, and slots that look almost right.
func scribblerChild() int {
	w, err := FromEnv()
	if err != nil || w == nil {
		fmt.Println("attach:", err)
		return 1
	}
	var done atomic.Bool
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		done.Store(true)
	}()
	created := atomic.LoadInt64(&w.v.hdr.created)
	fmt.Println("ok")
	words := len(w.mem) / 8
	for !done.Load() {
		for range 1000 {
			i := rand.IntN(words)
			p := (*uint64)(wordAt(w.mem, i))
			switch rand.IntN(3) {
			case 0:
				atomic.StoreUint64(p, rand.Uint64())
			case 1:
				atomic.StoreUint64(p, uint64(w.clock.now()-rand.Int64N(int64(time.Hour))))
			case 2:
				atomic.StoreUint64(p, rand.Uint64()|1)
			}
		}
		// And a slot that looks right: busy, started since the board was.
		s := &w.v.slots[rand.IntN(len(w.v.slots))]
		if now := w.clock.now(); created > 0 && created < now {
			atomic.StoreInt64(&s.start, created+rand.Int64N(now-created))
			atomic.StoreUint64(&s.seq, rand.Uint64()|1)
		}
	}
	return 0
}

func child(t *testing.T, role string, b *Board) (*exec.Cmd, io.WriteCloser, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+role, EnvFD+"=3")
	cmd.ExtraFiles = []*os.File{b.File()}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("%s child: %v", role, err)
		}
	})
	return cmd, stdin, bufio.NewScanner(stdout)
}

func say(t *testing.T, in io.Writer, out *bufio.Scanner, line string) {
	t.Helper()
	if _, err := fmt.Fprintln(in, line); err != nil {
		t.Fatal(err)
	}
	if !out.Scan() || out.Text() != "ok" {
		t.Fatalf("%q: child answered %q %v", line, out.Text(), out.Err())
	}
}

// A worker in another process: baton sees its pid, its request with the
// label it gave and a start time on baton's own clock, then the end.
func TestTwoProcesses(t *testing.T) {
	testutil.CheckFDLeaks(t)
	testutil.CheckChildLeaks(t)
	b, err := Create(DefaultSlots)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cmd, in, out := child(t, "writer", b)
	say(t, in, out, "hello") // attached once it answers
	if b.Writer() != cmd.Process.Pid {
		t.Errorf("writer %d, want the child %d", b.Writer(), cmd.Process.Pid)
	}
	before := time.Now()
	say(t, in, out, "begin GET /report?x=1")
	after := time.Now()
	r, ok := b.Oldest()
	if !ok || r.Label != "GET /report?x=1" {
		t.Fatalf("oldest %+v %v", r, ok)
	}
	// The child's CLOCK_MONOTONIC and ours agree: its start lies between
	// our clock readings around the command (give or take the pairing).
	if r.Start.Before(before.Add(-time.Millisecond)) || r.Start.After(after.Add(time.Millisecond)) {
		t.Errorf("start %v not within [%v, %v]", r.Start, before, after)
	}
	say(t, in, out, "end")
	if r, ok := b.Oldest(); ok {
		t.Errorf("after end: %+v", r)
	}
	say(t, in, out, "begin POST /again")
	r2, ok := b.Oldest()
	if !ok || r2.Label != "POST /again" || (r2.Slot == r.Slot && r2.Seq <= r.Seq) {
		t.Errorf("second request %+v after %+v", r2, r)
	}
	say(t, in, out, "end")
	if err := b.Check(); err != nil {
		t.Error(err)
	}
}

// A worker that scribbles garbage over its whole board while baton reads
// it: every read returns something sane, nothing panics or hangs, and
// Check notices the header.
func TestScribblingWorker(t *testing.T) {
	testutil.CheckFDLeaks(t)
	testutil.CheckChildLeaks(t)
	b, err := Create(DefaultSlots)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, in, out := child(t, "scribbler", b)
	if !out.Scan() || out.Text() != "ok" {
		t.Fatalf("scribbler: %q", out.Text())
	}
	found, corrupt := 0, false
	for i := 0; i < 5000 || !corrupt || found == 0; i++ {
		if i > 5_000_000 {
			t.Fatalf("after %d reads: corrupt %v, %d plausible requests seen", i, corrupt, found)
		}
		now := time.Now()
		if r, ok := b.Oldest(); ok {
			found++
			if r.Start.After(now.Add(2*time.Millisecond)) || r.Slot < 0 || r.Slot >= DefaultSlots || r.Seq%2 != 1 {
				t.Fatalf("implausible request read: %+v (now %v)", r, now)
			}
			if len(r.Label) > 3*LabelSize || !utf8.ValidString(r.Label) || strings.ContainsAny(r.Label, "\x00\n\r") {
				t.Fatalf("label %q", r.Label)
			}
		}
		if n := b.InFlight(); n < 0 || n > DefaultSlots {
			t.Fatalf("in flight %d", n)
		}
		_ = b.Overflow()
		_ = b.Writer()
		if err := b.Check(); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatal(err)
			}
			corrupt = true
		}
	}
	in.Close()
	t.Logf("%d plausible requests among the garbage", found)
}

// wordAt addresses the i-th 64-bit word of a mapping.
func wordAt(mem []byte, i int) unsafe.Pointer {
	return unsafe.Add(unsafe.Pointer(unsafe.SliceData(mem)), i*8)
}
