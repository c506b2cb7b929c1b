package activation

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Origin says where a socket came from.
type Origin string

const (
	// Inherited sockets were passed by systemd (a .socket unit or the fd
	// store).
	Inherited Origin = "inherited"
	// Bound sockets were created by baton from its config.
	Bound Origin = "bound"
)

// Socket is one named listening socket. baton keeps the File open for its
// whole life; children get it through exec.Cmd.ExtraFiles.
type Socket struct {
	Name   string
	Addr   string // as getsockname(2) reports it: "tcp://127.0.0.1:8080"
	Origin Origin
	File   *os.File
}

func (s *Socket) String() string { return fmt.Sprintf("%s (%s, %s)", s.Name, s.Addr, s.Origin) }

// Close closes the socket's fd. A unix socket's file stays: another baton
// (after a restart) may be about to use the same socket from the fd store.
func (s *Socket) Close() error {
	if err := s.File.Close(); err != nil {
		return fmt.Errorf("close socket %s: %w", s.Name, err)
	}
	return nil
}

// Set is an ordered list of sockets, in the order children see them.
type Set []*Socket

// Files returns the fds to pass as ExtraFiles: fd 3 is Files()[0].
func (s Set) Files() []*os.File {
	files := make([]*os.File, len(s))
	for i, sock := range s {
		files[i] = sock.File
	}
	return files
}

// Names is the LISTEN_FDNAMES value.
func (s Set) Names() string {
	names := make([]string, len(s))
	for i, sock := range s {
		names[i] = sock.Name
	}
	return strings.Join(names, ":")
}

// Close closes every socket.
func (s Set) Close() error {
	var errs []error
	for _, sock := range s {
		errs = append(errs, sock.Close())
	}
	return errors.Join(errs...)
}

// describe returns the address of a socket fd, "tcp://127.0.0.1:80" style.
func describe(fd int) (string, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return "", err
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return "", err
	}
	tcp := "tcp"
	if typ == unix.SOCK_DGRAM {
		tcp = "udp"
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return tcp + "://" + net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port)), nil
	case *unix.SockaddrInet6:
		return tcp + "://" + net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port)), nil
	case *unix.SockaddrUnix:
		return "unix://" + a.Name, nil
	}
	return fmt.Sprintf("%T", sa), nil
}
