package activation

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ListenFDsStart is the first passed fd, SD_LISTEN_FDS_START.
const ListenFDsStart = 3

// maxListenFDs bounds LISTEN_FDS so that a corrupt value cannot make baton
// walk (and claim) thousands of fds it does not own.
const maxListenFDs = 1024

// Environ is the seam to the process environment: os.LookupEnv and the pid.
type Environ struct {
	LookupEnv func(string) (string, bool)
	Pid       int
}

// OSEnviron is the real process's environment.
func OSEnviron() Environ { return Environ{LookupEnv: os.LookupEnv, Pid: os.Getpid()} }

// InheritError says which variable was wrong and how.
type InheritError struct {
	Variable, Value string
	Reason          string
}

func (e *InheritError) Error() string {
	return fmt.Sprintf("socket activation: %s=%q: %s", e.Variable, e.Value, e.Reason)
}

// Inherit returns the sockets systemd passed, in order, with their names. No
// LISTEN_FDS means none were passed (nil, nil). Anything malformed is an
// error naming the variable: baton must not start half-configured on sockets
// it misread. The fds are marked close-on-exec so that they reach children
// only through ExtraFiles.
func Inherit(env Environ) (Set, error) {
	countStr, ok := env.LookupEnv("LISTEN_FDS")
	if !ok {
		return nil, nil
	}
	pidStr, ok := env.LookupEnv("LISTEN_PID")
	if !ok {
		return nil, &InheritError{"LISTEN_PID", "", "not set, but LISTEN_FDS is: sockets passed to another process?"}
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return nil, &InheritError{"LISTEN_PID", pidStr, "not a pid"}
	}
	if pid != env.Pid {
		return nil, &InheritError{"LISTEN_PID", pidStr, fmt.Sprintf("sockets were passed to pid %d, this is pid %d", pid, env.Pid)}
	}
	n, err := strconv.Atoi(countStr)
	if err != nil || n < 0 {
		return nil, &InheritError{"LISTEN_FDS", countStr, "not a count of file descriptors"}
	}
	if n > maxListenFDs {
		return nil, &InheritError{"LISTEN_FDS", countStr, fmt.Sprintf("more than %d file descriptors", maxListenFDs)}
	}
	names := make([]string, n)
	if namesStr, ok := env.LookupEnv("LISTEN_FDNAMES"); ok && n > 0 {
		got := strings.Split(namesStr, ":")
		if len(got) != n {
			return nil, &InheritError{"LISTEN_FDNAMES", namesStr, fmt.Sprintf("%d names for LISTEN_FDS=%d", len(got), n)}
		}
		copy(names, got)
	}
	for i := range names {
		if names[i] == "" {
			names[i] = "unknown" // as sd_listen_fds_with_names(3)
		}
	}
	// Check every fd before claiming any, so an error leaves nothing open
	// under a Go *os.File that might close an fd it does not own.
	for i := 0; i < n; i++ {
		fd := ListenFDsStart + i
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return nil, &InheritError{"LISTEN_FDS", countStr, fmt.Sprintf("fd %d (%s) is not open: %v", fd, names[i], err)}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
			return nil, &InheritError{"LISTEN_FDS", countStr, fmt.Sprintf("fd %d (%s) is not a socket but %s", fd, names[i], fileType(st.Mode))}
		}
	}
	set := make(Set, 0, n)
	for i := 0; i < n; i++ {
		fd := ListenFDsStart + i
		unix.CloseOnExec(fd)
		addr, err := describe(fd)
		if err != nil {
			addr = "fd " + strconv.Itoa(fd)
		}
		set = append(set, &Socket{Name: names[i], Addr: addr, Origin: Inherited, File: os.NewFile(uintptr(fd), names[i])})
	}
	return set, nil
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFIFO:
		return "a pipe"
	case unix.S_IFLNK:
		return "a symlink"
	case unix.S_IFBLK:
		return "a block device"
	}
	return "an unknown kind of file"
}

// StripEnv returns env without the socket-activation variables, which are
// addressed to baton itself and must never reach its children.
func StripEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, "LISTEN_PID=") || strings.HasPrefix(kv, "LISTEN_FDS=") || strings.HasPrefix(kv, "LISTEN_FDNAMES=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
