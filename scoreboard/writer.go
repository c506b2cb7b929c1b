package scoreboard

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// EnvFD names the variable by which baton tells a worker the fd number of
// its board: the first fd after the LISTEN_FDS sockets, not counted in
// LISTEN_FDS nor named in LISTEN_FDNAMES.
const EnvFD = "BATON_SCOREBOARD_FD"

// Writer is a worker's side of its board. Begin and End are safe for
// concurrent use and lock-free: a compare-and-swap claims a slot, atomic
// stores fill and free it.
type Writer struct {
	mem   []byte
	v     view
	clock clock
}

// Token names the slot a request holds; the zero Token is a request that
// got no slot (the board was full, or there is no board).
type Token struct {
	slot uint32 // index+1; 0: none
	seq  uint64 // the odd seq this request set
}

// Tracked reports whether the request holds a slot.
func (t Token) Tracked() bool { return t.slot != 0 }

// FromEnv attaches to the board named by BATON_SCOREBOARD_FD, if any: it
// unsets the variable (so the worker's own children do not take it for
// theirs), maps the board and closes the fd, which the mapping outlives.
// With no variable it returns nil, nil: baton passed no board. A value
// that is not a sealed memfd is an error and its fd is left alone.
func FromEnv() (*Writer, error) {
	v, ok := os.LookupEnv(EnvFD)
	if !ok {
		return nil, nil
	}
	if err := os.Unsetenv(EnvFD); err != nil {
		return nil, fmt.Errorf("scoreboard: unset %s: %w", EnvFD, err)
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("scoreboard: %s=%q: want an fd number of at least 3", EnvFD, v)
	}
	w, err := Attach(fd)
	if err != nil {
		return nil, fmt.Errorf("scoreboard: %s=%d: %w", EnvFD, fd, err)
	}
	if err := unix.Close(fd); err != nil {
		return nil, errors.Join(fmt.Errorf("scoreboard: close fd %d: %w", fd, err), w.Close())
	}
	return w, nil
}

// Attach maps the board at fd for writing and records this process as its
// writer. It checks that fd is a sealed memfd whose header and size agree
// and whose clock is this process's. It does not close fd.
func Attach(fd int) (*Writer, error) {
	got, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("fd %d is not a memfd: %w", fd, err)
	}
	if got&(unix.F_SEAL_SHRINK|unix.F_SEAL_GROW) != unix.F_SEAL_SHRINK|unix.F_SEAL_GROW {
		return nil, fmt.Errorf("fd %d is not sealed against resizing (seals %#x)", fd, got)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("fd %d: %w", fd, err)
	}
	if st.Size < int64(Size(1)) || st.Size > int64(Size(MaxSlots)) || (st.Size-HeaderSize)%SlotSize != 0 {
		return nil, fmt.Errorf("fd %d: size %d is not a scoreboard's", fd, st.Size)
	}
	n := int(st.Size-HeaderSize) / SlotSize
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map fd %d: %w", fd, err)
	}
	w := &Writer{mem: mem, v: newView(mem, n), clock: newClock()}
	if err := w.check(n); err != nil {
		return nil, errors.Join(err, w.Close())
	}
	atomic.StoreUint64(&w.v.hdr.writer, uint64(os.Getpid()))
	return w, nil
}

func (w *Writer) check(n int) error {
	h := w.v.hdr
	want := encodeHeader(n, 0)
	if m := atomic.LoadUint64(&h.magic); m != Magic {
		return fmt.Errorf("bad magic %#x: not a baton scoreboard", m)
	}
	if s := atomic.LoadUint64(&h.shape[0]); s != nativeWord(want[8:]) {
		return fmt.Errorf("version or slot count %#x, want version %d and %d slots for its size", s, Version, n)
	}
	if s := atomic.LoadUint64(&h.shape[1]); s != nativeWord(want[16:]) {
		return fmt.Errorf("header and slot sizes %#x, want %d and %d", s, HeaderSize, SlotSize)
	}
	// A board from the future means the two processes do not share
	// CLOCK_MONOTONIC (a time namespace): every start would be misread.
	if c := atomic.LoadInt64(&h.created); c <= 0 || c > w.clock.now() {
		return fmt.Errorf("created at CLOCK_MONOTONIC %d, after now (%d): not this clock", c, w.clock.now())
	}
	return nil
}

// Slots is the board's number of slots.
func (w *Writer) Slots() int {
	if w == nil {
		return 0
	}
	return len(w.v.slots)
}

// Begin marks a request as started now, with a label (at most 48 bytes
// are kept; "GET /path" is the convention). When every slot is busy it
// counts an overflow and returns the zero Token. A nil Writer does nothing.
func (w *Writer) Begin(label string) Token {
	if w == nil {
		return Token{}
	}
	n := uint32(len(w.v.slots))
	// A random first slot keeps concurrent writers apart; probing on from
	// there finds a free one in a step or two while the board is not full.
	i := rand.Uint32N(n)
	for range n {
		p := &w.v.slots[i]
		seq := atomic.LoadUint64(&p.seq)
		if seq&1 == 0 && atomic.CompareAndSwapUint64(&p.seq, seq, seq+1) {
			storeLabel(p, label)
			atomic.StoreInt64(&p.start, w.clock.now())
			return Token{slot: i + 1, seq: seq + 1}
		}
		if i++; i == n {
			i = 0
		}
	}
	atomic.AddUint64(&w.v.hdr.overflow, 1)
	return Token{}
}

// End marks the request as finished and frees its slot. Call it once per
// Begin; a zero or stale Token is ignored.
func (w *Writer) End(t Token) {
	if w == nil || t.slot == 0 || int(t.slot) > len(w.v.slots) {
		return
	}
	p := &w.v.slots[t.slot-1]
	if atomic.LoadUint64(&p.seq) != t.seq {
		return
	}
	// start first: a reader that sees the slot busy with no start skips it.
	atomic.StoreInt64(&p.start, 0)
	atomic.CompareAndSwapUint64(&p.seq, t.seq, t.seq+1)
}

// Close unmaps the board. Call it only once no Begin or End can run: the
// memory is gone after.
func (w *Writer) Close() error {
	if w == nil || w.mem == nil {
		return nil
	}
	mem := w.mem
	w.mem, w.v = nil, view{}
	return munmap(mem)
}

func munmap(mem []byte) error {
	if err := unix.Munmap(mem); err != nil {
		return fmt.Errorf("scoreboard: unmap: %w", err)
	}
	return nil
}
