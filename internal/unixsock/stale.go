package unixsock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// ErrInUse is returned (wrapped, naming the path) when a live process
// listens on the path. It matches syscall.EADDRINUSE with errors.Is.
var ErrInUse = inUse{}

type inUse struct{}

func (inUse) Error() string        { return "address already in use" }
func (inUse) Is(target error) bool { return target == unix.EADDRINUSE }

// ErrNotSocket is returned (wrapped) when something other than a socket is
// at the path: it is not baton's to delete.
var ErrNotSocket = errors.New("exists and is not a socket; refusing to replace it")

// RemoveStale makes path free for bind(2): nothing there is fine; a socket
// file nobody listens on is removed; a socket that a live process listens
// on, of any type, is an ErrInUse error, and anything else at the path an
// ErrNotSocket error.
//
// Between the probe and the removal another process could bind the path;
// two batons starting at the same instant on one path are not told apart.
func RemoveStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s %w", path, ErrNotSocket)
	}
	live, err := Live(path)
	if err != nil {
		return err
	}
	if live {
		return fmt.Errorf("%s: %w (another process listens on it)", path, ErrInUse)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

// Live reports whether a process listens on the socket at path. A stream
// connect tells for every socket type: a listener or bound datagram socket
// of another type answers EPROTOTYPE, a full backlog EAGAIN, and only a
// file without a socket behind it ECONNREFUSED. The probe is non-blocking
// and closed at once; a live stream listener sees one empty connection.
func Live(path string) (bool, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return false, fmt.Errorf("probe %s: socket: %w", path, err)
	}
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
	cerr := unix.Close(fd)
	switch {
	case err == nil, errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINPROGRESS), errors.Is(err, unix.EPROTOTYPE):
		return true, cerr
	case errors.Is(err, unix.ECONNREFUSED):
		return false, cerr
	case errors.Is(err, unix.ENOENT):
		return false, cerr
	}
	return false, errors.Join(fmt.Errorf("probe %s: %w", path, err), cerr)
}
