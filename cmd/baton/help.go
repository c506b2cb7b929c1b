package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// command is one subcommand's help. Every command's help has one layout,
// printed to stdout by `baton COMMAND --help` and `baton help COMMAND`:
// the usage line, one paragraph saying what it does, then its flags.
type command struct {
	name    string
	args    string // what follows "baton NAME" in the usage line
	summary string // one line, for the list in `baton help`
	about   string // one paragraph
}

var commands = []command{
	{"run", "[FLAGS] [--] PROGRAM [ARGS]", "run and supervise workers of PROGRAM",
		"Run PROGRAM as a pool of worker processes and supervise them like a small systemd: each worker gets the listening sockets at fds 3.. with LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID, and baton's own NOTIFY_SOCKET for READY=1, WATCHDOG=1 and STATUS=. The sockets come from systemd (a .socket unit or the fd store) or are bound from --bind and the config file. Flags override the config file, which is re-read on every reload (systemctl reload, baton reload, SIGHUP). A DURATION is Go's (30s, 1m30s) or infinity; a SIZE is a number with K, M, G or T, each a power of 1024. Before anything starts, PROGRAM is resolved as the workers will resolve it (baton's PATH and working directory): a program that is missing, not executable, or a script whose #! interpreter is missing stops baton at once with the reason."},
	{"reload", "[--wait] [--timeout DURATION] [NAME | --control SOCKET]", "roll a new generation of workers (re-reads the config)",
		"Ask the running baton, over its control socket, to re-read its configuration and roll a new generation of workers: one canary first, then the rest, each old worker stopped only once its replacement is ready. An invalid configuration, or a worker command that cannot be executed, changes nothing. When the baton binary on disk was replaced (a package upgrade), baton first executes the new one in place. With --wait, return once the new generation has taken over, or exit non-zero with the reason it could not while the old generation keeps serving; the unit's ExecReload= runs this. SIGHUP reloads too. Without NAME or --control, the baton is found as baton(8) says: the unit's own under ExecReload= ($RUNTIME_DIRECTORY, $MAINPID), else the only one running (several: name one). NAME is an instance (myapp for baton@myapp), a unit name or a pid, looked up in /run/baton and $XDG_RUNTIME_DIR/baton."},
	{"status", "[--json] [NAME | --control SOCKET]", "show the workers, sockets and reloads",
		"Show the running baton's workers (slot, pid, generation, state, age, time since the last heartbeat, resident memory, oldest request in flight, last STATUS=), its sockets and its last reloads, read over its control socket. --json prints the same in a stable schema for tools. Without NAME or --control, the baton is found as baton(8) says: the unit's own under ExecReload= ($RUNTIME_DIRECTORY, $MAINPID), else the only one running (several: name one). NAME is an instance (myapp for baton@myapp), a unit name or a pid, looked up in /run/baton and $XDG_RUNTIME_DIR/baton."},
	{"check", "[-c FILE] [--unit UNIT|--kubernetes FILE] [FLAGS] [-- CMD]", "validate the config, the worker command, and the unit or pod that runs it",
		"Validate the configuration as baton run would read it (the file, then the flags) and check that the worker command can be executed: found in PATH, executable, its #! interpreter or dynamic loader present. With --unit, also read that unit from systemd over D-Bus and compare it with the configuration: TimeoutStopSec= against the drain, FileDescriptorStoreMax= for sockets baton binds itself, KillMode=, NotifyAccess=, WatchdogSec=, ExecReload= and Type=notify-reload (whose failed reloads systemctl cannot hear of). With --kubernetes FILE (repeatable), check each Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet or Job in the manifests against the config baton would run with there (the container's args and BATON_* env over -c FILE, or over the ConfigMap mounted at its --config): terminationGracePeriodSeconds against preStop + drain-delay + graceful-timeout, probes against /livez and /readyz on the metrics socket, a preStop sleep beside drain-delay, a shell in front of baton. Exits 0 when all is well, 2 when the configuration or the command is wrong, 1 when the unit or the manifests are."},
	{"upgrade", "[NAME | --control SOCKET]", "execute the baton binary on disk in place (same pid)",
		"Ask the running baton to execute the baton binary now on disk in place: the same pid, so systemd notices nothing; the sockets, the control socket and the running workers are handed over, then the workers are rolled as in a reload. A new binary that cannot start is refused and the old baton goes on. SIGUSR2 does the same. Without NAME or --control, the baton is found as baton(8) says: the unit's own under ExecReload= ($RUNTIME_DIRECTORY, $MAINPID), else the only one running (several: name one). NAME is an instance (myapp for baton@myapp), a unit name or a pid, looked up in /run/baton and $XDG_RUNTIME_DIR/baton."},
	{"units", "[-o DIR]", "print (or write) the systemd unit files",
		"Print the systemd unit files baton ships, baton@.service and baton@.socket, or write them into DIR (created with its parents if missing), such as /etc/systemd/system for an install without the packages; run systemctl daemon-reload after."},
	{"version", "", "print the version",
		"Print baton's version, the commit it was built from and the Go version."},
	{"help", "[COMMAND]", "show this help, or a command's",
		"Show what baton does and its commands, or one command's help, as baton COMMAND --help does."},
}

const about = "baton is a systemd-native pre-fork server runtime: it runs N worker processes of any program that speaks systemd's socket-activation protocol, hands each the listening sockets as systemd would, supervises them with sd_notify heartbeats and explicit timeouts, rolls new generations on reload without failing a request, and keeps its sockets across restarts, crashes and its own upgrades. See baton(8)."

func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// usageLine is "usage: baton NAME ARGS".
func (c command) usageLine() string {
	return strings.TrimSpace("usage: baton " + c.name + " " + c.args)
}

// newFlagSet is the FlagSet of command name, with -h/--help; parseFlags
// parses it and prints the help.
func newFlagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("baton "+name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, help is printed by parseFlags
	fs.Usage = func() {}
	fs.BoolP("help", "h", false, "show this help")
	return fs
}

// errHelped says the help was asked for and printed: exit 0.
var errHelped = errors.New("help printed")

// parseFlags parses args into fs. With -h or --help it prints the
// command's help to stdout and returns errHelped; a bad flag is a
// usageError.
func parseFlags(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if h, _ := fs.GetBool("help"); h {
		name := strings.TrimPrefix(fs.Name(), "baton ")
		c, _ := lookup(name)
		writeHelp(os.Stdout, c, fs)
		return errHelped
	}
	return nil
}

// noArgs refuses arguments to a command that takes none.
func noArgs(fs *pflag.FlagSet) error {
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	return nil
}

// writeHelp prints a command's help: usage line, paragraph, flags.
func writeHelp(w io.Writer, c command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "%s\n\n%s\n\nflags:\n%s", c.usageLine(), wrap(c.about, 79), fs.FlagUsagesWrapped(79))
}

// writeMainHelp prints baton's own help in the same layout, listing the
// commands where a command lists its flags.
func writeMainHelp(w io.Writer) {
	fmt.Fprintf(w, "usage: baton COMMAND [FLAGS] [ARGS]\n\n%s\n\ncommands:\n", wrap(about, 79))
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nbaton COMMAND --help (or baton help COMMAND) shows a command's flags.\n")
}

// helpCommand is `baton help [COMMAND]`.
func helpCommand(args []string) error {
	fs := newFlagSet("help")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch fs.NArg() {
	case 0:
		writeMainHelp(os.Stdout)
		return nil
	case 1:
		return dispatchErr([]string{fs.Arg(0), "--help"})
	}
	return usageError{fmt.Errorf("help takes one command, got %q", fs.Args())}
}

// wrap fills text into lines of at most width columns.
func wrap(text string, width int) string {
	var b strings.Builder
	col := 0
	for _, word := range strings.Fields(text) {
		switch {
		case col == 0:
		case col+1+len(word) > width:
			b.WriteByte('\n')
			col = 0
		default:
			b.WriteByte(' ')
			col++
		}
		b.WriteString(word)
		col += len(word)
	}
	return b.String()
}
