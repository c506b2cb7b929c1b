package activation

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// SealInheritedFDs marks every fd from minFD up close-on-exec. Go's os/exec
// hands children every fd without that flag, so anything baton inherited by
// accident (a shell's stray fd, a leaked pipe) would otherwise reach every
// worker; systemd closes such fds for its services and baton must not pass
// more than systemd would. Call it at start, after Inherit, before any
// worker is spawned; sockets reach workers through ExtraFiles regardless.
func SealInheritedFDs(minFD int) error {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list inherited fds: %w", err)
	}
	names, err := d.Readdirnames(-1)
	cerr := d.Close()
	if err != nil {
		return fmt.Errorf("list inherited fds: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("list inherited fds: %w", cerr)
	}
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd < minFD {
			continue
		}
		// The directory fd used above is already closed; EBADF for it (or
		// any fd closed meanwhile) is fine.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && err != unix.EBADF {
			return fmt.Errorf("set close-on-exec on fd %d: %w", fd, err)
		}
	}
	return nil
}
