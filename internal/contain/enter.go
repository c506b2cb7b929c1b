package contain

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// EnterEnv names the cgroup a worker must join itself, before it executes
// its command, where baton cannot start it there: Linux before 5.7, or
// clone3 refused by a seccomp filter (systemd's RestrictNamespaces=, which
// the shipped unit sets, makes clone3 fail with ENOSYS so that callers
// fall back to clone, whose flags it can check). Cell.Env sets it then.
const EnterEnv = "BATON_CGROUP"

// Enter moves the calling process into the cgroup EnterEnv names and
// removes the variable; without the variable it does nothing. baton's
// exec shim calls it between fork and exec: nothing has forked yet, so
// nothing escapes, as with CLONE_INTO_CGROUP.
func Enter() error {
	dir, ok := os.LookupEnv(EnterEnv)
	if !ok {
		return nil
	}
	if err := os.Unsetenv(EnterEnv); err != nil {
		return fmt.Errorf("join cgroup %s: %w", dir, err)
	}
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("join cgroup %q: not an absolute path", dir)
	}
	if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(os.Getpid()), false); err != nil {
		return fmt.Errorf("join cgroup %s: %w", dir, err)
	}
	return nil
}

// clone3Allowed probes clone3(2) with arguments the kernel refuses with
// EINVAL; any other error (ENOSYS from an old kernel or from
// RestrictNamespaces=, EPERM from a SystemCallFilter=) means it cannot be
// used. No process is created either way.
func clone3Allowed() bool {
	_, _, errno := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
	return errno == unix.EINVAL
}
