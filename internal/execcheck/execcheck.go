package execcheck

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Error says why a command cannot be executed.
type Error struct {
	// Command is the command as written.
	Command string
	// Path is the file it resolved to; empty when it resolved to none.
	Path string
	// Err is the cause: exec.ErrNotFound, exec.ErrDot, or the errno that
	// execve(2) would return (syscall.ENOENT, EACCES, ENOEXEC, ELOOP...).
	Err error
	// Detail explains Err in words, naming files and the way to fix it.
	Detail string
}

func (e *Error) Error() string {
	if e.Path != "" && e.Path != e.Command {
		return fmt.Sprintf("%q (%s): %s", e.Command, e.Path, e.Detail)
	}
	return fmt.Sprintf("%q: %s", e.Command, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

// Check resolves command as LookPath does and reports, as an *Error, why
// executing it in a process with PATH pathEnv and baton's working directory
// would fail; nil when nothing is known to stand in the way. It returns the
// file command resolves to.
func Check(command, pathEnv string) (string, error) {
	path, err := LookPath(command, pathEnv)
	if err != nil {
		return "", err
	}
	if detail, cause := format(path, pathEnv, 0, 0, false); cause != nil {
		return "", &Error{Command: command, Path: path, Err: cause, Detail: detail}
	}
	return path, nil
}

// LookPath resolves command as os/exec.LookPath does (which baton's exec
// shim calls in the worker), but with PATH given rather than read from the
// environment: a name with a slash is a path, relative to the working
// directory; any other name is searched in PATH, and one found through a
// relative PATH entry is refused (exec.ErrDot). Errors are *Error.
func LookPath(command, pathEnv string) (string, error) {
	switch command {
	case "", ".", "..":
		return "", &Error{Command: command, Err: exec.ErrNotFound, Detail: "not a command"}
	}
	if strings.Contains(command, "/") {
		if err := executable(command); err != nil {
			return "", &Error{Command: command, Err: errnoOf(err), Detail: explain(command, err)}
		}
		return command, nil
	}
	var skipped []string
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "." // as in a shell
		}
		path := filepath.Join(dir, command)
		err := executable(path)
		if err == nil {
			if !filepath.IsAbs(path) {
				return "", &Error{Command: command, Path: path, Err: exec.ErrDot,
					Detail: fmt.Sprintf("found only through the relative PATH entry %q, which Go's os/exec (and so baton's exec shim) refuses: name the command by its absolute path", dir)}
			}
			return path, nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			skipped = append(skipped, path+": "+explain(path, err))
		}
	}
	detail := "not found in PATH=" + pathEnv
	if pathEnv == "" {
		detail = "not found: PATH is empty, give the command's absolute path"
	}
	if len(skipped) > 0 {
		detail += " (passed over " + strings.Join(skipped, "; ") + ")"
	}
	return "", &Error{Command: command, Err: exec.ErrNotFound, Detail: detail}
}

// executable is os/exec's test: the file exists, is no directory, and the
// effective user may execute it (faccessat(2) with AT_EACCESS, which also
// refuses files on noexec mounts).
func executable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return syscall.EISDIR
	}
	err = unix.Faccessat(unix.AT_FDCWD, path, unix.X_OK, unix.AT_EACCESS)
	if err == nil || (err != syscall.ENOSYS && err != syscall.EPERM) {
		return err
	}
	// Where faccessat is filtered (seccomp), os/exec falls back to the
	// mode bits; so do we.
	if st.Mode()&0o111 != 0 {
		return nil
	}
	return syscall.EACCES
}

// errnoOf reduces a *fs.PathError to its errno, the cause execve returns.
func errnoOf(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// explain puts the error executable returned for path in words.
func explain(path string, err error) string {
	rel := ""
	if !filepath.IsAbs(path) {
		if wd, werr := os.Getwd(); werr == nil {
			rel = " (relative to the working directory " + wd + ")"
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file or directory" + rel
	case errors.Is(err, syscall.ENOTDIR):
		return "a component of the path is not a directory" + rel
	case errors.Is(err, syscall.EISDIR):
		return "is a directory, not a program" + rel
	case errors.Is(err, syscall.EACCES), errors.Is(err, fs.ErrPermission):
		st, serr := os.Stat(path)
		if serr == nil && st.Mode()&0o111 == 0 {
			return fmt.Sprintf("not executable (mode %04o): chmod +x it", st.Mode().Perm())
		}
		var sfs unix.Statfs_t
		if unix.Statfs(path, &sfs) == nil && sfs.Flags&unix.ST_NOEXEC != 0 {
			return "permission denied: it is on a filesystem mounted noexec"
		}
		return fmt.Sprintf("permission denied for uid %d (a directory on the way without search permission, or a mode that excludes this user)", os.Geteuid())
	}
	return errnoOf(err).Error() + rel
}
