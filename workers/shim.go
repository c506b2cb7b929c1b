package workers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"github.com/batonhq/baton/internal/contain"
	"golang.org/x/sys/unix"
)

// ShimArg marks an invocation of baton's own binary as the exec shim. Go's
// os/exec cannot run code between fork and exec, yet LISTEN_PID must be the
// worker's own pid, which is only known after fork: so the child starts as
// baton itself, sets LISTEN_PID (and WATCHDOG_PID) to getpid() and execs the
// real command in place, keeping the pid.
const ShimArg = "__baton_exec_shim"

// execFDEnv names the shim's report fd: a close-on-exec pipe that the shim
// writes its exec error to, or that closes silently when exec succeeds. It is
// passed after the sockets so the worker's fds 3.. are exactly the sockets.
const execFDEnv = "BATON_SHIM_EXEC_FD"

// IsShim reports whether args (os.Args) are a shim invocation. main (and
// TestMain in tests that spawn workers) must then call RunShim.
func IsShim(args []string) bool { return len(args) > 2 && args[1] == ShimArg }

// RunShim executes the worker command named in args after "ShimArg --". It
// returns only on failure, after reporting the failure on the report fd; the
// caller exits with status 127, as a shell does for a command it cannot run.
func RunShim(args []string) error {
	if !IsShim(args) || args[2] != "--" || len(args) < 4 {
		return errors.New("baton exec shim: usage: baton " + ShimArg + " -- COMMAND [ARGS]")
	}
	argv := args[3:]
	report := -1
	if v := os.Getenv(execFDEnv); v != "" {
		if fd, err := strconv.Atoi(v); err == nil && fd > 2 {
			report = fd
			unix.CloseOnExec(fd)
		}
	}
	// With cgroups but no clone3(2) (a sandbox's RestrictNamespaces=), the
	// worker joins its cgroup here, before it runs anything of its own.
	err := contain.Enter()
	if err == nil {
		err = shimExec(argv)
	}
	if report >= 0 {
		// Best effort: if the report cannot be written, the parent still sees
		// the exit status 127.
		_, _ = unix.Write(report, []byte(err.Error()))
	}
	return err
}

func shimExec(argv []string) error {
	if err := os.Unsetenv(execFDEnv); err != nil {
		return fmt.Errorf("exec %s: %w", argv[0], err)
	}
	pid := strconv.Itoa(os.Getpid())
	if _, ok := os.LookupEnv("LISTEN_FDS"); ok {
		if err := os.Setenv("LISTEN_PID", pid); err != nil {
			return fmt.Errorf("exec %s: %w", argv[0], err)
		}
	}
	if _, ok := os.LookupEnv("WATCHDOG_USEC"); ok {
		if err := os.Setenv("WATCHDOG_PID", pid); err != nil {
			return fmt.Errorf("exec %s: %w", argv[0], err)
		}
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("exec %s: %w", argv[0], unwrapExecError(err))
	}
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil // not reached
}

// unwrapExecError turns exec.LookPath's `exec: "x": executable file not found
// in $PATH` into its cause, since the caller already names the command.
func unwrapExecError(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return err
}
