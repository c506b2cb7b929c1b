package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/proc"
	"github.com/batonhq/baton/workers"
)

// Exit codes (README, "Exit status"): 0 after a clean stop; 2 for usage
// and configuration errors, as LSB and systemd (EXIT_INVALIDARGUMENT) use
// it; 3 when no worker ever became ready, as gunicorn's worker boot error;
// 1 for everything else.
const (
	exitFailure    = 1
	exitUsage      = 2
	exitNeverReady = 3
)

// The main goroutine stays on the main thread: it is the one thread that
// forks workers and executes a new baton in place (internal/proc), the
// thread an upgrade's execve(2) keeps.
func init() { runtime.LockOSThread() }

func main() {
	// Between fork and exec of a worker, baton is its own exec shim.
	if workers.IsShim(os.Args) {
		err := workers.RunShim(os.Args)
		fmt.Fprintf(os.Stderr, "baton: %v\n", err)
		os.Exit(127)
	}
	os.Exit(proc.ServeMainThread(func() int { return dispatch(os.Args[1:]) }))
}

// dispatch runs one command and says how baton exits: help goes to stdout
// with 0; a usage error to stderr, with the usage line, and 2; a
// configuration error (file, line, key) 2; anything else 1.
func dispatch(args []string) int {
	name := ""
	if len(args) > 0 {
		name = commandName(args[0])
	}
	err := dispatchErr(args)
	if err == nil || errors.Is(err, errHelped) {
		return 0
	}
	fmt.Fprintf(os.Stderr, "baton: %v\n", err)
	var uerr usageError
	if errors.As(err, &uerr) {
		usage, more := "usage: baton COMMAND [FLAGS] [ARGS]", "baton help"
		if c, ok := lookup(name); ok {
			usage, more = c.usageLine(), "baton "+c.name+" --help"
		}
		fmt.Fprintf(os.Stderr, "%s\n(%s for more)\n", usage, more)
		return exitUsage
	}
	var cerr *config.Error
	if errors.As(err, &cerr) {
		return exitUsage
	}
	if errors.Is(err, workers.ErrNeverReady) {
		return exitNeverReady
	}
	return exitFailure
}

func dispatchErr(args []string) error {
	if len(args) == 0 {
		return usageError{errors.New("no command given")}
	}
	run := map[string]func([]string) error{
		"run": runCommand, "reload": reloadCommand, "status": statusCommand, "check": checkCommand,
		"upgrade": upgradeCommand, "units": unitsCommand, "version": versionCommand, "help": helpCommand,
	}
	f, ok := run[commandName(args[0])]
	if !ok {
		return usageError{fmt.Errorf("unknown command %q", args[0])}
	}
	return f(args[1:])
}

// commandName maps the flag spellings of help and version to the commands.
func commandName(arg string) string {
	switch arg {
	case "--help", "-h":
		return "help"
	case "--version":
		return "version"
	}
	return arg
}

// usageError marks errors in how baton was invoked.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }
