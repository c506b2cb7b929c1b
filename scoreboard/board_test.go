package scoreboard

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/batonhq/baton/internal/testutil"
	"golang.org/x/sys/unix"
)

// pair creates a board and a writer attached to it in this process.
func pair(t *testing.T, n int) (*Board, *Writer) {
	t.Helper()
	b, err := Create(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	w, err := Attach(int(b.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Error(err)
		}
	})
	return b, w
}

func TestCreateWritesHeaderAndSeals(t *testing.T) {
	testutil.CheckFDLeaks(t)
	b, err := Create(5)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fd := int(b.File().Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != int64(Size(5)) || Size(5) != 64+5*64 {
		t.Errorf("size %d, want %d", st.Size, Size(5))
	}
	got, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil || got != unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL {
		t.Errorf("seals %#x, %v", got, err)
	}
	hdr := make([]byte, HeaderSize)
	if _, err := unix.Pread(fd, hdr, 0); err != nil {
		t.Fatal(err)
	}
	if string(hdr[:8]) != "BATONSCB" || nativeWord(hdr[8:])&0xffffffff != Version || nativeWord(hdr[8:])>>32 != 5 {
		t.Errorf("header %q", hdr)
	}
	if err := b.Check(); err != nil {
		t.Error(err)
	}
	if b.Writer() != 0 || b.Overflow() != 0 || b.InFlight() != 0 {
		t.Errorf("fresh board: writer %d overflow %d in flight %d", b.Writer(), b.Overflow(), b.InFlight())
	}
	if _, ok := b.Oldest(); ok {
		t.Error("a fresh board has a request")
	}
	if f := b.File(); f == nil {
		t.Fatal("no file")
	}
	if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("memfd not close-on-exec: %#x %v", flags, err)
	}
}

// The worker gets the same memfd: whatever it tries, the size stays.
func TestSealsHoldAgainstTheWriter(t *testing.T) {
	b, _ := pair(t, 3)
	fd := int(b.File().Fd())
	if err := unix.Ftruncate(fd, 0); !errors.Is(err, unix.EPERM) {
		t.Errorf("shrink: %v, want EPERM", err)
	}
	if err := unix.Ftruncate(fd, int64(Size(100))); !errors.Is(err, unix.EPERM) {
		t.Errorf("grow: %v, want EPERM", err)
	}
	if _, err := unix.Pwrite(fd, []byte("x"), int64(Size(3))); !errors.Is(err, unix.EPERM) {
		t.Errorf("write past the end: %v, want EPERM", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_WRITE); !errors.Is(err, unix.EPERM) {
		t.Errorf("add a seal: %v, want EPERM", err)
	}
	// Writing inside is the worker's right.
	if _, err := unix.Pwrite(fd, []byte("x"), int64(Size(3)-1)); err != nil {
		t.Errorf("write inside: %v", err)
	}
}

func TestCreateRejectsBadSizes(t *testing.T) {
	for _, n := range []int{0, -1, MaxSlots + 1} {
		if b, err := Create(n); err == nil {
			b.Close()
			t.Errorf("Create(%d) succeeded", n)
		}
	}
}

func TestBeginEndOldest(t *testing.T) {
	b, w := pair(t, 4)
	if b.Writer() != os.Getpid() {
		t.Errorf("writer %d, want %d", b.Writer(), os.Getpid())
	}
	before := time.Now()
	ta := w.Begin("GET /a")
	tb := w.Begin("POST /b")
	after := time.Now()
	if !ta.Tracked() || !tb.Tracked() {
		t.Fatal("untracked with free slots")
	}
	r, ok := b.Oldest()
	if !ok || r.Label != "GET /a" {
		t.Fatalf("oldest %+v %v", r, ok)
	}
	if r.Start.Before(before.Add(-time.Millisecond)) || r.Start.After(after.Add(time.Millisecond)) {
		t.Errorf("start %v not within [%v, %v]", r.Start, before, after)
	}
	if time.Since(r.Start) < 0 {
		t.Errorf("start %v in the future", r.Start)
	}
	if n := b.InFlight(); n != 2 {
		t.Errorf("in flight %d", n)
	}
	w.End(ta)
	if r, ok := b.Oldest(); !ok || r.Label != "POST /b" {
		t.Fatalf("after End(a): %+v %v", r, ok)
	}
	w.End(ta) // a second End of a stale token is ignored
	if b.InFlight() != 1 {
		t.Errorf("a stale End freed a slot")
	}
	w.End(tb)
	if r, ok := b.Oldest(); ok {
		t.Errorf("after both ended: %+v", r)
	}
	w.End(Token{}) // the zero token is ignored
}

func TestSeqTellsRequestsInOneSlotApart(t *testing.T) {
	b, w := pair(t, 1)
	t1 := w.Begin("one")
	r1, _ := b.Oldest()
	w.End(t1)
	t2 := w.Begin("two")
	r2, ok := b.Oldest()
	if !ok || r2.Slot != r1.Slot || r2.Seq <= r1.Seq || r1.Seq%2 != 1 || r2.Seq%2 != 1 {
		t.Errorf("first %+v, second %+v", r1, r2)
	}
	w.End(t2)
}

func TestFullBoardCountsOverflow(t *testing.T) {
	b, w := pair(t, 2)
	t1, t2 := w.Begin("1"), w.Begin("2")
	t3 := w.Begin("3")
	if t3.Tracked() {
		t.Error("a third request got a slot on a board of two")
	}
	if b.Overflow() != 1 {
		t.Errorf("overflow %d", b.Overflow())
	}
	w.End(t3) // ignored
	w.End(t1)
	if t4 := w.Begin("4"); !t4.Tracked() {
		t.Error("no slot after one was freed")
	} else {
		w.End(t4)
	}
	w.End(t2)
	if b.InFlight() != 0 {
		t.Errorf("in flight %d", b.InFlight())
	}
}

func TestLabels(t *testing.T) {
	b, w := pair(t, 1)
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"GET /", "GET /"},
		{strings.Repeat("x", 60), strings.Repeat("x", 48)},
		// 47 bytes then a two-byte rune: the cut rune goes whole.
		{strings.Repeat("x", 47) + "é", strings.Repeat("x", 47)},
		{strings.Repeat("x", 46) + "é", strings.Repeat("x", 46) + "é"},
		{"a\nb\x00c", "a?b"},
		{"bad \xff utf8", "bad ? utf8"},
	} {
		tok := w.Begin(tc.in)
		r, ok := b.Oldest()
		w.End(tok)
		if !ok || r.Label != tc.want {
			t.Errorf("label %q read as %q, want %q", tc.in, r.Label, tc.want)
		}
	}
}

// Many goroutines begin and end requests while baton reads: no slot is
// ever held twice, nothing is lost, and the board ends empty.
func TestConcurrentWriters(t *testing.T) {
	const goroutines, each = 8, 5000
	b, w := pair(t, 16)
	var owners [16]atomic.Int32
	var wg sync.WaitGroup
	stop := make(chan struct{})
	reads := make(chan int, 1)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				reads <- n
				return
			default:
			}
			if r, ok := b.Oldest(); ok && (r.Slot < 0 || r.Slot >= 16 || !strings.HasPrefix(r.Label, "req ")) {
				t.Errorf("read %+v", r)
			}
			_ = b.InFlight()
			n++
		}
	}()
	for g := 1; g <= goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				tok := w.Begin("req " + string(rune('a'+g)))
				if !tok.Tracked() {
					t.Error("untracked with more slots than writers")
					return
				}
				if !owners[tok.slot-1].CompareAndSwap(0, int32(g)) {
					t.Errorf("slot %d held twice", tok.slot-1)
				}
				owners[tok.slot-1].Store(0)
				w.End(tok)
			}
		}()
	}
	wg.Wait()
	close(stop)
	t.Logf("%d reads during %d requests", <-reads, goroutines*each)
	if b.InFlight() != 0 || b.Overflow() != 0 {
		t.Errorf("after: in flight %d, overflow %d", b.InFlight(), b.Overflow())
	}
}

// What a lying worker writes is read without harm: impossible start times
// are skipped, labels cleaned, a rewritten header reported.
func TestGarbageIsSkipped(t *testing.T) {
	b, w := pair(t, 6)
	now := w.clock.now()
	set := func(i int, seq uint64, start int64, label []byte) {
		p := &w.v.slots[i]
		var buf [LabelSize]byte
		copy(buf[:], label)
		for k := range p.label {
			atomic.StoreUint64(&p.label[k], nativeWord(buf[k*8:]))
		}
		atomic.StoreInt64(&p.start, start)
		atomic.StoreUint64(&p.seq, seq)
	}
	set(0, 1, now+int64(time.Hour), []byte("future"))
	set(1, 3, -5, []byte("negative"))
	set(2, 5, b.created-1, []byte("before the board"))
	set(3, 8, now-int64(time.Second), []byte("even seq: free"))
	set(4, 7, 0, []byte("no start yet"))
	if r, ok := b.Oldest(); ok {
		t.Errorf("garbage read as a request: %+v", r)
	}
	if n := b.InFlight(); n != 0 {
		t.Errorf("in flight %d", n)
	}
	full := make([]byte, LabelSize)
	for i := range full {
		full[i] = 0xff
	}
	set(5, 9, b.created+1, full)
	r, ok := b.Oldest()
	if !ok || !utf8.ValidString(r.Label) || r.Label != "?" {
		t.Errorf("oldest %+v %v", r, ok)
	}
	if b.Check() != nil {
		t.Errorf("header intact but Check says %v", b.Check())
	}
	atomic.StoreUint64(&w.v.hdr.shape[0], 1<<40)
	if err := b.Check(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Check after the header was overwritten: %v", err)
	}
	atomic.StoreUint64(&w.v.hdr.writer, 1<<62)
	if b.Writer() != 0 {
		t.Errorf("writer %d", b.Writer())
	}
}

func TestAttachChecks(t *testing.T) {
	testutil.CheckFDLeaks(t)
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer wr.Close()
	if _, err := Attach(int(r.Fd())); err == nil || !strings.Contains(err.Error(), "not a memfd") {
		t.Errorf("a pipe: %v", err)
	}
	mk := func(seal bool, hdr []byte, size int) int {
		fd, err := unix.MemfdCreate("test", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Ftruncate(fd, int64(size)); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Pwrite(fd, hdr, 0); err != nil {
			t.Fatal(err)
		}
		if seal {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
				t.Fatal(err)
			}
		}
		return fd
	}
	now := newClock().now()
	good := encodeHeader(2, now)
	badMagic := append([]byte("NOTABORD"), good[8:]...)
	future := encodeHeader(2, now+int64(time.Hour))
	for _, tc := range []struct {
		name string
		fd   int
		want string
	}{
		{"unsealed", mk(false, good, Size(2)), "not sealed"},
		{"bad magic", mk(true, badMagic, Size(2)), "bad magic"},
		{"slots disagree with size", mk(true, good, Size(3)), "slot count"},
		{"odd size", mk(true, good, Size(2)+1), "not a scoreboard"},
		{"other clock", mk(true, future, Size(2)), "not this clock"},
	} {
		if w, err := Attach(tc.fd); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
			w.Close()
		}
	}
	if w, err := Attach(mk(true, good, Size(2))); err != nil {
		t.Errorf("good: %v", err)
	} else {
		w.Close()
	}
}

func TestFromEnv(t *testing.T) {
	testutil.CheckFDLeaks(t)
	t.Setenv(EnvFD, "")
	os.Unsetenv(EnvFD)
	if w, err := FromEnv(); w != nil || err != nil {
		t.Errorf("without the variable: %v %v", w, err)
	}
	b, err := Create(3)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fd, err := unix.Dup(int(b.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvFD, itoa(fd))
	w, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, ok := os.LookupEnv(EnvFD); ok {
		t.Errorf("%s still set", EnvFD)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
		t.Errorf("fd %d still open after FromEnv: %v", fd, err)
	}
	tok := w.Begin("x")
	if r, ok := b.Oldest(); !ok || r.Label != "x" {
		t.Errorf("oldest %+v %v", r, ok)
	}
	w.End(tok)

	for _, v := range []string{"x", "1", "-3"} {
		t.Setenv(EnvFD, v)
		if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), EnvFD) {
			t.Errorf("%s=%s: %v", EnvFD, v, err)
		}
	}
}

func TestAdopt(t *testing.T) {
	testutil.CheckFDLeaks(t)
	b, w := pair(t, 7)
	tok := w.Begin("GET /long")
	defer w.End(tok)
	fd, err := unix.Dup(int(b.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Adopt(os.NewFile(uintptr(fd), "adopted"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Slots() != 7 || a.Writer() != os.Getpid() {
		t.Errorf("adopted %d slots, writer %d", a.Slots(), a.Writer())
	}
	r1, _ := b.Oldest()
	r2, ok := a.Oldest()
	if !ok || r2.Label != "GET /long" || r2.Seq != r1.Seq {
		t.Errorf("adopted oldest %+v %v, original %+v", r2, ok, r1)
	}
	if d := r2.Start.Sub(r1.Start); d > time.Millisecond || d < -time.Millisecond {
		t.Errorf("start times disagree by %v", d)
	}

	unsealed, err := unix.MemfdCreate("x", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(unsealed), "unsealed")
	defer f.Close()
	if _, err := Adopt(f); err == nil {
		t.Error("adopted an unsealed memfd")
	}
}

func TestClosedBoard(t *testing.T) {
	b, err := Create(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, ok := b.Oldest(); ok || b.InFlight() != 0 || b.Overflow() != 0 || b.Writer() != 0 || b.Check() == nil {
		t.Error("a closed board answers")
	}
	var w *Writer
	if tok := w.Begin("x"); tok.Tracked() {
		t.Error("nil writer tracked a request")
	}
	w.End(Token{slot: 1})
	if w.Close() != nil || w.Slots() != 0 {
		t.Error("nil writer")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
