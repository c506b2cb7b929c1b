// Package scoreboard owns the shared-memory request scoreboard: the memfd
// through which a worker tells baton which requests it is running and since
// when, without a system call per request. baton creates one board per
// worker (Create), passes it as an extra fd named by BATON_SCOREBOARD_FD,
// and reads it on its own clock (Board.Oldest); the worker attaches to it
// (FromEnv, Attach) and marks each request's start and end (Writer.Begin,
// Writer.End) with a few atomic stores. It is what uWSGI's harakiri
// scoreboard does for one language, for any worker that can map a file.
//
// # Layout
//
// All fields are 64-bit words in the machine's native byte order, written
// and read with atomic 64-bit loads and stores; times are CLOCK_MONOTONIC
// nanoseconds, the clock both processes share. The file is a 64-byte header
// then Slots slots of 64 bytes each (so a board of 63 slots is one page):
//
//	header
//	 0  magic      "BATONSCB"
//	 8  version    uint32 (1), then slots uint32
//	16  header     uint32 (64), then slot size uint32 (64)
//	24  created    CLOCK_MONOTONIC ns when baton created the board
//	32  writer     pid of the worker that attached (0: none yet)
//	40  overflow   requests begun while every slot was busy (not tracked)
//	48  reserved   zero
//	slot i, at 64 + 64*i
//	 0  seq        even: free; odd: a request holds the slot
//	 8  start      CLOCK_MONOTONIC ns when the request began (0: none)
//	16  label      48 bytes of UTF-8, NUL-padded ("GET /report")
//
// A writer claims a free slot by a compare-and-swap of seq from even to odd,
// stores the label, then the start; it frees the slot by storing start 0,
// then seq+1. seq thus grows by two per request, so a reader can tell a new
// request in the same slot from the one it saw before.
//
// # Trust
//
// baton reads memory that a worker can scribble on, so the reader trusts
// nothing in it: the slot count and size are baton's own from Create (the
// worker cannot resize the file: it is sealed with F_SEAL_SHRINK,
// F_SEAL_GROW and F_SEAL_SEAL, so the mapping never faults), start times
// outside [created, now] are ignored, labels are cut at 48 bytes and made
// valid UTF-8, and no loop depends on a value the worker wrote. A lying
// worker can at worst make its own requests look older or younger than they
// are, which only earns it the request clock's escalation sooner or later.
//
// See memfd_create(2), fcntl(2) (File Sealing) and docs/protocol.md.
package scoreboard
