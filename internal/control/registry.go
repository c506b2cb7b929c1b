package control

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/internal/procfs"
	"golang.org/x/sys/unix"
)

// The registry is how `baton reload`, `status` and `upgrade` find a
// running baton without being told where its control socket is.
//
// A registry is a directory: /run/baton for the system's service manager
// (and root), $XDG_RUNTIME_DIR/baton for a user's. A baton's entry in it,
// NAME, is its runtime directory, holding control.sock and baton.pid (the
// pid of the baton listening there, against which $MAINPID resolves):
//
//   - RuntimeDirectory=baton/NAME (as baton@.service has): systemd's
//     directory is the entry;
//   - no RuntimeDirectory=: baton creates NAME itself and removes it when
//     it exits;
//   - RuntimeDirectory= elsewhere: NAME is a symlink to it.
//
// NAME is the instance of baton@NAME.service, else the unit's name
// without ".service".
const (
	SocketName     = "control.sock"
	PIDFileName    = "baton.pid"
	SystemRegistry = "/run/baton"
)

// Typed lookup failures, for the exit status.
var (
	// ErrNotFound: no running baton matches the name, pid or search.
	ErrNotFound = errors.New("no running baton found")
	// ErrAmbiguous: several batons run and none was named.
	ErrAmbiguous = errors.New("more than one baton runs")
	// ErrNoRegistry: nowhere to register (not root, no XDG_RUNTIME_DIR).
	ErrNoRegistry = errors.New("no registry directory: neither root nor XDG_RUNTIME_DIR")
)

// RegistryDir is the registry a baton with this environment registers in:
// $XDG_RUNTIME_DIR/baton when XDG_RUNTIME_DIR is set (systemd sets it for
// a user manager's services, pam_systemd for sessions), else /run/baton
// for root, else "".
func RegistryDir(getenv func(string) string, euid int) string {
	if x := getenv("XDG_RUNTIME_DIR"); x != "" {
		return filepath.Join(x, "baton")
	}
	if euid == 0 {
		return SystemRegistry
	}
	return ""
}

// SearchDirs are the registries a client looks in: its own user's, then
// the system's.
func SearchDirs(getenv func(string) string) []string {
	if x := getenv("XDG_RUNTIME_DIR"); x != "" && filepath.Join(x, "baton") != SystemRegistry {
		return []string{filepath.Join(x, "baton"), SystemRegistry}
	}
	return []string{SystemRegistry}
}

// InstanceName is the registry name for a unit or a name given on the
// command line: "baton@myapp.service", "baton@myapp", "myapp.service" and
// "myapp" are all "myapp".
func InstanceName(unit string) string {
	name := strings.TrimSuffix(unit, ".service")
	if i := strings.LastIndexByte(name, '@'); i >= 0 && name[:i] == "baton" && i+1 < len(name) {
		name = name[i+1:]
	}
	return name
}

// Instance is a running baton found in a registry.
type Instance struct {
	Name   string
	PID    int
	Socket string // its control socket
	// Usable is false when this user may not connect to the socket.
	Usable bool
}

func (i Instance) String() string {
	return fmt.Sprintf("%s (pid %d, %s)", i.Name, i.PID, i.Socket)
}

// List returns the running batons registered in dirs, sorted by registry
// and name. Entries whose baton has exited are left out.
func List(dirs []string) []Instance {
	var out []Instance
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue // absent or not ours to read: nothing registered for us
		}
		var found []Instance
		for _, e := range ents {
			entry := filepath.Join(dir, e.Name())
			pid := livePID(entry)
			if pid == 0 {
				continue
			}
			sock := filepath.Join(entry, SocketName)
			err := unix.Access(sock, unix.W_OK)
			if errors.Is(err, unix.ENOENT) {
				continue // its control socket is elsewhere (--control)
			}
			found = append(found, Instance{Name: e.Name(), PID: pid, Socket: sock, Usable: err == nil})
		}
		sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
		out = append(out, found...)
	}
	return out
}

// livePID returns the pid in entry's baton.pid if that process still
// runs, else 0. A pid reused since (a process started after the file was
// written) does not count.
func livePID(entry string) int {
	f := filepath.Join(entry, PIDFileName)
	b, err := os.ReadFile(f)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	fi, err := os.Stat(f)
	if err != nil {
		return 0
	}
	started := procfs.Started(pid)
	// The boot time behind a start time has a resolution of a second.
	if started.IsZero() || !procfs.Alive(pid) || started.After(fi.ModTime().Add(2*time.Second)) {
		return 0
	}
	return pid
}

// Query says which baton a client means; the first field set decides.
type Query struct {
	Name       string // a registry or unit name, or a pid in decimal
	RuntimeDir string // $RUNTIME_DIRECTORY: ExecReload= of a unit with RuntimeDirectory=
	MainPID    int    // $MAINPID: ExecReload= of any unit
	Dirs       []string
}

// Find returns the control socket of the baton q names; with nothing set,
// that of the one running baton.
func Find(q Query) (string, error) {
	all := List(q.Dirs)
	if q.Name != "" {
		if pid, err := strconv.Atoi(q.Name); err == nil {
			return byPID(all, pid, q.Dirs)
		}
		name := InstanceName(q.Name)
		for _, in := range all {
			if in.Name == name {
				return in.Socket, nil
			}
		}
		return "", fmt.Errorf("%w named %q in %s%s", ErrNotFound, name, strings.Join(q.Dirs, ", "), running(all))
	}
	if q.RuntimeDir != "" {
		if p := filepath.Join(q.RuntimeDir, SocketName); exists(p) {
			return p, nil
		}
	}
	if q.MainPID > 0 {
		return byPID(all, q.MainPID, q.Dirs)
	}
	var usable, denied []Instance
	for _, in := range all {
		if in.Usable {
			usable = append(usable, in)
		} else {
			denied = append(denied, in)
		}
	}
	switch {
	case len(usable) == 1:
		return usable[0].Socket, nil
	case len(usable) > 1:
		return "", fmt.Errorf("%w: %s; name one (baton status NAME) or pass --control SOCKET", ErrAmbiguous, join(usable))
	case len(denied) > 0:
		return "", fmt.Errorf("%w that this user may use: %s; run as their user or root", ErrNotFound, join(denied))
	}
	return "", fmt.Errorf("%w in %s; name one, pass --control SOCKET, or run baton under systemd", ErrNotFound, strings.Join(q.Dirs, ", "))
}

func byPID(all []Instance, pid int, dirs []string) (string, error) {
	for _, in := range all {
		if in.PID == pid {
			return in.Socket, nil
		}
	}
	return "", fmt.Errorf("%w with pid %d in %s%s", ErrNotFound, pid, strings.Join(dirs, ", "), running(all))
}

func running(all []Instance) string {
	if len(all) == 0 {
		return " (none runs)"
	}
	return "; running: " + join(all)
}

func join(ins []Instance) string {
	s := make([]string, len(ins))
	for i, in := range ins {
		s[i] = in.String()
	}
	return strings.Join(s, ", ")
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Registration is a baton's entry in a registry. Its fields survive an
// upgrade in place (JSON), so that the new image removes the entry.
type Registration struct {
	// Dir is the runtime directory: the control and notify sockets and
	// baton.pid go there.
	Dir string
	// Entry is the registry entry: Dir itself or a symlink to it; "" when
	// baton is not registered.
	Entry    string
	OwnsDir  bool // baton created Dir: removed on Close
	OwnsLink bool // Entry is a symlink baton created: removed on Close
	PID      int  // written to baton.pid by Publish
}

// Register makes the entry NAME in registry for the baton with pid.
// runtimeDir is systemd's RuntimeDirectory= ("" when none): the entry is
// then that directory (when it is in the registry) or a symlink to it;
// without one, baton creates the entry as its runtime directory. An entry
// of that name that another live baton holds is left alone: the new one
// is NAME-PID instead. With no runtimeDir, an unusable registry is an
// error; with one, baton runs unregistered (note says why, unless there
// is no registry at all).
func Register(registry, name, runtimeDir string, pid int) (reg *Registration, note string, err error) {
	reg = &Registration{Dir: runtimeDir, PID: pid}
	if runtimeDir != "" {
		// RuntimeDirectory=baton/NAME is an entry already, also for a
		// service user that may not write the registry itself
		// (DynamicUser=, as baton@.service has).
		if parent := filepath.Dir(filepath.Clean(runtimeDir)); parent == filepath.Clean(registry) || parent == SystemRegistry {
			reg.Entry = runtimeDir
			return reg, "", nil
		}
	}
	if registry == "" {
		if runtimeDir == "" {
			return nil, "", ErrNoRegistry
		}
		return reg, "", nil
	}
	fail := func(err error) (*Registration, string, error) {
		if runtimeDir == "" {
			return nil, "", err
		}
		return reg, err.Error(), nil
	}
	// Only the registry itself: XDG_RUNTIME_DIR is the session's to make.
	if err := os.Mkdir(registry, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fail(fmt.Errorf("registry: %w", err))
	}
	entry := filepath.Join(registry, name)
	if other := livePID(entry); other != 0 && other != pid {
		note = fmt.Sprintf("%s belongs to another running baton (pid %d); registered as %s-%d", entry, other, name, pid)
		entry = fmt.Sprintf("%s-%d", entry, pid)
	}
	if err := removeStale(entry); err != nil {
		return fail(err)
	}
	if runtimeDir != "" {
		if err := os.Symlink(runtimeDir, entry); err != nil {
			return fail(fmt.Errorf("registry: %w", err))
		}
		reg.Entry, reg.OwnsLink = entry, true
		return reg, note, nil
	}
	// 0700: the sockets inside are for the service's user (and root).
	if err := os.Mkdir(entry, 0o700); err != nil {
		return fail(fmt.Errorf("registry: %w", err))
	}
	reg.Dir, reg.Entry, reg.OwnsDir = entry, entry, true
	return reg, note, nil
}

// removeStale removes what an exited baton left at entry: a symlink, or a
// directory holding only its sockets and baton.pid. Anything else there
// is not baton's to remove.
func removeStale(entry string) error {
	fi, err := os.Lstat(entry)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if err := os.Remove(entry); err != nil {
			return fmt.Errorf("registry: remove stale entry: %w", err)
		}
		return nil
	}
	if !fi.IsDir() {
		return fmt.Errorf("registry: %s exists and is not a baton's", entry)
	}
	ents, err := os.ReadDir(entry)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	for _, e := range ents {
		if e.Name() != PIDFileName && e.Name() != "."+PIDFileName && e.Type()&fs.ModeSocket == 0 {
			return fmt.Errorf("registry: %s holds %s: not a baton's entry, left alone", entry, e.Name())
		}
	}
	if err := os.RemoveAll(entry); err != nil {
		return fmt.Errorf("registry: remove stale entry: %w", err)
	}
	return nil
}

// Publish writes baton.pid once the control socket listens: from then on
// clients find this baton by name, by pid and as the only one running.
func (r *Registration) Publish() error {
	if r.Entry == "" {
		return nil
	}
	tmp := filepath.Join(r.Dir, "."+PIDFileName)
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(r.PID)+"\n"), 0o644); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(r.Dir, PIDFileName)); err != nil {
		return errors.Join(fmt.Errorf("registry: %w", err), os.Remove(tmp))
	}
	return nil
}

// Close removes what Register and Publish created, and only that: a
// baton.pid or symlink that another baton has replaced since stays.
func (r *Registration) Close() error {
	var errs []error
	if r.OwnsDir {
		if err := os.RemoveAll(r.Dir); err != nil {
			errs = append(errs, err)
		}
	} else {
		pidFile := filepath.Join(r.Dir, PIDFileName)
		if b, err := os.ReadFile(pidFile); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(r.PID) {
			if err := os.Remove(pidFile); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if r.OwnsLink {
		if target, err := os.Readlink(r.Entry); err == nil && target == r.Dir {
			if err := os.Remove(r.Entry); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}
