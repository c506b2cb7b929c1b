package fdutil

import "syscall"

// Raw returns c's descriptor through SyscallConn, which, unlike
// os.File.Fd, does not switch it to blocking mode (that would stall a
// goroutine reading it).
func Raw(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return -1, err
	}
	return fd, nil
}
