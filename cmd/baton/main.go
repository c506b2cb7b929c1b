package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/workers"
)

// Exit codes: 2 for usage and configuration errors, as LSB and systemd
// (EXIT_INVALIDARGUMENT) use it; 1 for everything else.
const (
	exitFailure = 1
	exitUsage   = 2
)

const usage = `usage: baton COMMAND [FLAGS]

commands:
  run [FLAGS] [--] PROGRAM [ARGS]   run and supervise workers of PROGRAM
  reload [--wait]                   roll a new generation of workers (re-reads the config)
  status [--json]                   show the workers, sockets and reloads
  check [-c FILE] [--unit UNIT]     validate the config, and the unit that runs it
  upgrade                           execute the baton binary on disk in place (same pid)
  units [-o DIR]                    print (or write) the systemd unit files
  version                           print the version
  help                              print this help

"baton run --help" lists the run flags.
`

func main() {
	// Between fork and exec of a worker, baton is its own exec shim.
	if workers.IsShim(os.Args) {
		err := workers.RunShim(os.Args)
		fmt.Fprintf(os.Stderr, "baton: %v\n", err)
		os.Exit(127)
	}
	os.Exit(dispatch(os.Args[1:]))
}

func dispatch(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "run":
		err = runCommand(args[1:])
	case "reload":
		err = reloadCommand(args[1:])
	case "check":
		err = checkCommand(args[1:])
	case "status":
		err = statusCommand(args[1:])
	case "upgrade":
		err = upgradeCommand(args[1:])
	case "units":
		err = unitsCommand(args[1:])
	case "version", "--version":
		fmt.Println(versionString())
	case "help", "--help", "-h":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "baton: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(os.Stderr, "baton: %v\n", err)
	var cerr *config.Error
	var uerr usageError
	if errors.As(err, &cerr) || errors.As(err, &uerr) {
		return exitUsage
	}
	return exitFailure
}

// usageError marks errors in how baton was invoked.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }
