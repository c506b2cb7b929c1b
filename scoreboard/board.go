package scoreboard

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// seals are what baton puts on every board: the worker can write the
// contents but never change the size, and nobody can lift the seals.
const seals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// Board is baton's side of one worker's scoreboard: it owns the memfd and
// a read-only mapping of it. A Board is used from one goroutine (baton's
// event loop); its methods never block and never fail on what the worker
// wrote.
type Board struct {
	file    *os.File
	mem     []byte
	v       view
	n       int
	created int64
	clock   clock
}

// Request is a request in flight, as read from a board.
type Request struct {
	Slot  int    // 0-based slot index
	Seq   uint64 // odd; a new request in the same slot has a larger one
	Start time.Time
	Label string
}

// Create makes a board of n slots: a memfd sized for them, its header
// written, sealed against shrinking and growing, and mapped read-only. Pass
// File() to the worker (it is close-on-exec here, so only through
// os/exec's ExtraFiles) and name its fd number in BATON_SCOREBOARD_FD.
func Create(n int) (*Board, error) {
	if n < 1 || n > MaxSlots {
		return nil, fmt.Errorf("scoreboard: %d slots: want 1 to %d", n, MaxSlots)
	}
	fd, err := unix.MemfdCreate("baton-scoreboard", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("scoreboard: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "baton-scoreboard")
	c := newClock()
	created := c.now()
	if err := setUp(fd, n, created); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return open(f, n, created, c)
}

func setUp(fd, n int, created int64) error {
	if err := unix.Ftruncate(fd, int64(Size(n))); err != nil {
		return fmt.Errorf("scoreboard: size the memfd: %w", err)
	}
	if _, err := unix.Pwrite(fd, encodeHeader(n, created), 0); err != nil {
		return fmt.Errorf("scoreboard: write the header: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		return fmt.Errorf("scoreboard: seal the memfd: %w", err)
	}
	return nil
}

// Adopt takes over a board that another baton created and handed over (a
// self-upgrade in place). The slot count comes from the file's size, which
// the seals fixed, never from the header the worker can write.
func Adopt(f *os.File) (*Board, error) {
	fd := int(f.Fd())
	got, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("scoreboard: adopt fd %d: not a memfd: %w", fd, err)
	}
	if got&seals != seals {
		return nil, fmt.Errorf("scoreboard: adopt fd %d: seals %#x lack shrink, grow or seal", fd, got)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("scoreboard: adopt fd %d: %w", fd, err)
	}
	size := st.Size
	if size < int64(Size(1)) || size > int64(Size(MaxSlots)) || (size-HeaderSize)%SlotSize != 0 {
		return nil, fmt.Errorf("scoreboard: adopt fd %d: size %d is not a board's", fd, size)
	}
	c := newClock()
	b, err := open(f, int(size-HeaderSize)/SlotSize, 0, c)
	if err != nil {
		return nil, err
	}
	// The creation time only bounds the start times that make sense; the
	// header's is the worker's to scribble on, so it only narrows, never
	// widens, what is accepted.
	if cr := atomic.LoadInt64(&b.v.hdr.created); cr > 0 && cr <= c.now() {
		b.created = cr
	}
	return b, nil
}

func open(f *os.File, n int, created int64, c clock) (*Board, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, Size(n), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("scoreboard: map: %w", err), f.Close())
	}
	return &Board{file: f, mem: mem, v: newView(mem, n), n: n, created: created, clock: c}, nil
}

// File is the memfd, for ExtraFiles. It stays baton's: Close closes it.
func (b *Board) File() *os.File { return b.file }

// Slots is the number of slots, as created.
func (b *Board) Slots() int { return b.n }

// Oldest returns the longest-running request in flight. Slots whose start
// time is impossible (before the board existed, in the future) are
// skipped, as are slots changing while read.
func (b *Board) Oldest() (Request, bool) {
	if b.mem == nil {
		return Request{}, false
	}
	now := b.clock.now()
	// A start a little after our "now" is honest: the two processes paired
	// their clocks separately, within microseconds.
	latest := now + int64(time.Millisecond)
	for attempt := 0; attempt < 3; attempt++ {
		best, bestStart, bestSeq := -1, int64(math.MaxInt64), uint64(0)
		for i := range b.v.slots {
			p := &b.v.slots[i]
			seq := atomic.LoadUint64(&p.seq)
			if seq&1 == 0 {
				continue
			}
			start := atomic.LoadInt64(&p.start)
			if start <= 0 || start < b.created || start > latest || start >= bestStart {
				continue
			}
			best, bestStart, bestSeq = i, start, seq
		}
		if best < 0 {
			return Request{}, false
		}
		p := &b.v.slots[best]
		label := loadLabel(p)
		if atomic.LoadUint64(&p.seq) != bestSeq || atomic.LoadInt64(&p.start) != bestStart {
			continue // it ended (or was rewritten) while read: look again
		}
		return Request{Slot: best, Seq: bestSeq, Start: b.clock.time(min(bestStart, now)), Label: label}, true
	}
	return Request{}, false
}

// InFlight counts the slots that hold a request with a plausible start.
func (b *Board) InFlight() int {
	if b.mem == nil {
		return 0
	}
	latest := b.clock.now() + int64(time.Millisecond)
	n := 0
	for i := range b.v.slots {
		p := &b.v.slots[i]
		if atomic.LoadUint64(&p.seq)&1 == 0 {
			continue
		}
		if s := atomic.LoadInt64(&p.start); s > 0 && s >= b.created && s <= latest {
			n++
		}
	}
	return n
}

// Overflow is how many requests the worker began while every slot was
// busy, which it could not report. The worker writes it, so it is only as
// true as the worker.
func (b *Board) Overflow() uint64 {
	if b.mem == nil {
		return 0
	}
	return atomic.LoadUint64(&b.v.hdr.overflow)
}

// Writer is the pid of the worker that attached, 0 before one did.
func (b *Board) Writer() int {
	if b.mem == nil {
		return 0
	}
	pid := atomic.LoadUint64(&b.v.hdr.writer)
	if pid > math.MaxInt32 {
		return 0
	}
	return int(pid)
}

// ErrCorrupt is returned by Check when the worker overwrote the header.
var ErrCorrupt = errors.New("scoreboard header overwritten by the worker")

// Check reports whether the header still says what baton wrote; a worker
// that scribbled on it is misbehaving (the slots are still read safely).
func (b *Board) Check() error {
	if b.mem == nil {
		return errors.New("scoreboard: closed")
	}
	h := b.v.hdr
	words := [3]uint64{
		atomic.LoadUint64(&h.magic),
		atomic.LoadUint64(&h.shape[0]),
		atomic.LoadUint64(&h.shape[1]),
	}
	want := encodeHeader(b.n, 0)
	for i, w := range words {
		if w != nativeWord(want[i*8:]) {
			return fmt.Errorf("%w: word %d is %#x", ErrCorrupt, i, w)
		}
	}
	return nil
}

// Close unmaps the board and closes the memfd. The worker's mapping, if
// any, lives on until it exits.
func (b *Board) Close() error {
	if b.mem == nil {
		return nil
	}
	err := unix.Munmap(b.mem)
	b.mem, b.v = nil, view{}
	return errors.Join(err, b.file.Close())
}
