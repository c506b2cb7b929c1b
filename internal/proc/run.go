package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// ExitError is a command that ran and failed.
type ExitError struct {
	Status unix.WaitStatus
	Stderr []byte
}

func (e *ExitError) Error() string {
	if e.Status.Signaled() {
		return fmt.Sprintf("killed by signal %d", e.Status.Signal())
	}
	return fmt.Sprintf("exit status %d", e.Status.ExitStatus())
}

// Output runs argv to completion through the reaper and returns its
// standard output; a failure is an *ExitError with its standard error. It
// stands in for os/exec in a process whose reaper reaps every child. ctx's
// end kills the command.
func Output(ctx context.Context, argv []string, env []string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("run: no command")
	}
	path := argv[0]
	if lp, err := exec.LookPath(argv[0]); err == nil {
		path = lp
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return nil, err
	}
	defer errR.Close()
	exited := make(chan Exit, 1)
	attr := &syscall.ProcAttr{Env: env, Files: []uintptr{devnull.Fd(), outW.Fd(), errW.Fd()}, Sys: &syscall.SysProcAttr{Setpgid: true}}
	pid, pidfd, err := Default().Start(path, argv, attr, func(e Exit) { exited <- e })
	cerr := errors.Join(outW.Close(), errW.Close())
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", argv[0], err)
	}
	if pidfd >= 0 {
		defer unix.Close(pidfd)
	}
	if cerr != nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
		return nil, cerr
	}
	var stdout, stderr bytes.Buffer
	copied := make(chan error, 2)
	go func() { _, err := io.Copy(&stdout, io.LimitReader(outR, 1<<20)); copied <- err }()
	go func() { _, err := io.Copy(&stderr, io.LimitReader(errR, 1<<20)); copied <- err }()
	var e Exit
	select {
	case e = <-exited:
	case <-ctx.Done():
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
		return nil, fmt.Errorf("run %s: %w", argv[0], ctx.Err())
	}
	// The pipes close when every process holding them did; a daemonised
	// grandchild could keep them open, so the process group goes too.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	if err := errors.Join(<-copied, <-copied); err != nil {
		return nil, fmt.Errorf("run %s: %w", argv[0], err)
	}
	if e.Status.ExitStatus() != 0 || e.Status.Signaled() {
		return stdout.Bytes(), &ExitError{Status: e.Status, Stderr: stderr.Bytes()}
	}
	return stdout.Bytes(), nil
}
