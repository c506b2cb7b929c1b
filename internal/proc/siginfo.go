package proc

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// siginfoPID reads si_pid from a waitid(2) result. x/sys/unix exposes
// Siginfo as opaque bytes; on Linux si_pid follows si_signo, si_errno,
// si_code (three int32) and, on 64-bit platforms, 4 bytes of padding.
func siginfoPID(info *unix.Siginfo) int32 {
	type childInfo struct {
		Signo, Errno, Code int32
		_                  [unsafe.Sizeof(uintptr(0)) - 4]byte
		PID                int32
	}
	return (*childInfo)(unsafe.Pointer(info)).PID
}
