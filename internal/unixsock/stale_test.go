package unixsock

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/batonhq/baton/internal/testutil"
	"golang.org/x/sys/unix"
)

// deadSocket leaves a socket file with nothing behind it, as a process
// killed with SIGKILL does.
func deadSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
}

func TestRemoveStale(t *testing.T) {
	testutil.CheckFDLeaks(t)
	dir := t.TempDir()

	if err := RemoveStale(filepath.Join(dir, "none.sock")); err != nil {
		t.Errorf("no file: %v", err)
	}

	dead := filepath.Join(dir, "dead.sock")
	deadSocket(t, dead)
	if err := RemoveStale(dead); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	if _, err := os.Lstat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale socket not removed: %v", err)
	}

	for _, network := range []string{"unix", "unixgram", "unixpacket"} {
		live := filepath.Join(dir, network+".sock")
		var closer interface{ Close() error }
		var err error
		if network == "unixgram" {
			closer, err = net.ListenUnixgram(network, &net.UnixAddr{Name: live, Net: network})
		} else {
			closer, err = net.Listen(network, live)
		}
		if err != nil {
			t.Fatal(err)
		}
		err = RemoveStale(live)
		if !errors.Is(err, ErrInUse) || !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), live+": address already in use") {
			t.Errorf("%s listener: %v, want address already in use naming %s", network, err, live)
		}
		if _, serr := os.Lstat(live); serr != nil {
			t.Errorf("%s: a live socket was removed: %v", network, serr)
		}
		closer.Close()
	}

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := RemoveStale(file); !errors.Is(err, ErrNotSocket) || !strings.Contains(err.Error(), file) {
		t.Errorf("regular file: %v", err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("regular file removed: %v", err)
	}
}

// A listener whose backlog is full is alive all the same.
func TestFullBacklogIsLive(t *testing.T) {
	testutil.CheckFDLeaks(t)
	path := filepath.Join(t.TempDir(), "full.sock")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	full := false
	for i := 0; i < 8 && !full; i++ {
		c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(c)
		full = errors.Is(unix.Connect(c, &unix.SockaddrUnix{Name: path}), unix.EAGAIN)
	}
	if !full {
		t.Fatal("backlog never filled")
	}
	if live, err := Live(path); err != nil || !live {
		t.Errorf("listener with a full backlog: live %v, %v", live, err)
	}
}
