package scoreboard

import (
	"encoding/binary"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The format's constants (see the package documentation).
const (
	Version    = 1
	HeaderSize = 64
	SlotSize   = 64
	// LabelSize is the longest label a slot keeps; longer ones are cut.
	LabelSize = 48
	// MaxSlots bounds a board (4 MiB), so that a corrupt request cannot
	// make baton map a huge file.
	MaxSlots = 1 << 16
	// DefaultSlots fills one 4 KiB page with the header.
	DefaultSlots = 63
)

// Magic is the first word of a board: "BATONSCB" in the native byte order.
var Magic = binary.NativeEndian.Uint64([]byte("BATONSCB"))

// header mirrors the first 64 bytes of a board.
// The 32-bit pairs are kept as whole words so that every access is one
// atomic 64-bit load.
type header struct {
	magic    uint64
	shape    [2]uint64 // version and slots; header and slot sizes
	created  int64
	writer   uint64
	overflow uint64
	_        [2]uint64
}

// slot mirrors one 64-byte slot.
type slot struct {
	seq   uint64
	start int64
	label [LabelSize / 8]uint64
}

// Compile-time checks that the mirrors match the documented layout.
var (
	_ [HeaderSize - unsafe.Sizeof(header{})]byte
	_ [unsafe.Sizeof(header{}) - HeaderSize]byte
	_ [SlotSize - unsafe.Sizeof(slot{})]byte
	_ [unsafe.Sizeof(slot{}) - SlotSize]byte
)

// Size is the file size of a board of n slots.
func Size(n int) int { return HeaderSize + n*SlotSize }

// view addresses a mapping as a header and slots. mem must stay mapped for
// as long as the view is used.
type view struct {
	mem   []byte
	hdr   *header
	slots []slot
}

func newView(mem []byte, n int) view {
	base := unsafe.Pointer(unsafe.SliceData(mem))
	return view{
		mem:   mem,
		hdr:   (*header)(base),
		slots: unsafe.Slice((*slot)(unsafe.Add(base, HeaderSize)), n),
	}
}

// encodeHeader is the header baton writes at Create.
func encodeHeader(n int, created int64) []byte {
	b := make([]byte, HeaderSize)
	e := binary.NativeEndian
	e.PutUint64(b[0:], Magic)
	e.PutUint32(b[8:], Version)
	e.PutUint32(b[12:], uint32(n))
	e.PutUint32(b[16:], HeaderSize)
	e.PutUint32(b[20:], SlotSize)
	e.PutUint64(b[24:], uint64(created))
	return b
}

// nativeWord reads a word of an encoded header.
func nativeWord(b []byte) uint64 { return binary.NativeEndian.Uint64(b) }

// storeLabel writes s, cut to LabelSize bytes on a rune boundary and
// NUL-padded, with atomic word stores.
func storeLabel(p *slot, s string) {
	if len(s) > LabelSize {
		s = s[:LabelSize]
		// Drop a rune cut in half (at most UTFMax-1 bytes).
		for n := 1; n < utf8.UTFMax && !utf8.ValidString(s); n++ {
			s = s[:len(s)-1]
		}
	}
	var buf [LabelSize]byte
	copy(buf[:], s)
	for i := range p.label {
		atomic.StoreUint64(&p.label[i], binary.NativeEndian.Uint64(buf[i*8:]))
	}
}

// loadLabel reads a label a worker wrote, whatever it is: cut at the first
// NUL, control characters replaced, invalid UTF-8 made valid.
func loadLabel(p *slot) string {
	var buf [LabelSize]byte
	for i := range p.label {
		binary.NativeEndian.PutUint64(buf[i*8:], atomic.LoadUint64(&p.label[i]))
	}
	b := buf[:]
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
		if c < 0x20 || c == 0x7f {
			b[i] = '?'
		}
	}
	return strings.ToValidUTF8(string(b), "?")
}

// clock converts between this process's monotonic time and raw
// CLOCK_MONOTONIC nanoseconds, which another process can compare. Go's
// monotonic clock is CLOCK_MONOTONIC on Linux, so one pairing at start
// holds for the life of the process, and reading it costs what time.Since
// costs (a vDSO call, no system call).
type clock struct {
	wall time.Time // carries Go's monotonic reading
	mono int64     // CLOCK_MONOTONIC at wall
}

func newClock() clock {
	var ts unix.Timespec
	t0 := time.Now()
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // cannot fail for CLOCK_MONOTONIC
	t1 := time.Now()
	return clock{wall: t0.Add(t1.Sub(t0) / 2), mono: ts.Nano()}
}

// now is CLOCK_MONOTONIC in nanoseconds.
func (c clock) now() int64 { return c.mono + int64(time.Since(c.wall)) }

// time converts CLOCK_MONOTONIC nanoseconds to a time.Time of this process,
// with a monotonic reading, comparable with time.Now().
func (c clock) time(mono int64) time.Time { return c.wall.Add(time.Duration(mono - c.mono)) }
