package contain

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// mount is one cgroup filesystem from /proc/self/mountinfo.
type mount struct {
	point string // where it is mounted
	root  string // which of its directories is mounted there
	fs    string // "cgroup2" or "cgroup"
	opts  []string
}

func mounts() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		left, right, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		l, r := strings.Fields(left), strings.Fields(right)
		if len(l) < 5 || len(r) < 3 || (r[0] != "cgroup2" && r[0] != "cgroup") {
			continue
		}
		out = append(out, mount{point: unescape(l[4]), root: unescape(l[3]), fs: r[0], opts: strings.Split(r[2], ",")})
	}
	return out, sc.Err()
}

// unescape undoes mountinfo's octal escapes of space, tab, newline and '\'.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unified returns the cgroup2 mount: /sys/fs/cgroup on a unified system,
// /sys/fs/cgroup/unified on a hybrid one.
func unified(ms []mount) (mount, bool) {
	var found []mount
	for _, m := range ms {
		if m.fs == "cgroup2" {
			found = append(found, m)
		}
	}
	for _, m := range found {
		if m.point == "/sys/fs/cgroup" {
			return m, true
		}
	}
	if len(found) > 0 {
		return found[0], true
	}
	return mount{}, false
}

// v1Controller reports whether a cgroup v1 hierarchy holds controller:
// then it cannot be enabled in cgroup2 (a hybrid host).
func v1Controller(ms []mount, controller string) bool {
	for _, m := range ms {
		if m.fs == "cgroup" {
			for _, o := range m.opts {
				if o == controller {
					return true
				}
			}
		}
	}
	return false
}

// cgroupOf returns pid's cgroup2 path ("/system.slice/x.service"), from the
// "0::" line of /proc/PID/cgroup.
func cgroupOf(pid int) (string, error) {
	name := "/proc/self/cgroup"
	if pid > 0 {
		name = "/proc/" + strconv.Itoa(pid) + "/cgroup"
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s has no cgroup2 entry", name)
}

// dirOf maps a cgroup2 path to its directory under the mount.
func dirOf(m mount, path string) (string, bool) {
	if m.root != "/" {
		rest, ok := strings.CutPrefix(path, m.root)
		if !ok || (rest != "" && rest[0] != '/') {
			return "", false
		}
		path = rest
	}
	return filepath.Join(m.point, path), true
}

// pathOf is the inverse of dirOf: the cgroup2 path /proc/PID/cgroup shows
// for a directory, false when dir is not under a cgroup2 mount (a fake).
func pathOf(ms []mount, dir string) (string, bool) {
	m, ok := unified(ms)
	if !ok {
		return "", false
	}
	rest, ok := strings.CutPrefix(dir, m.point)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	if m.root != "/" {
		rest = strings.TrimSuffix(m.root, "/") + rest
	}
	if rest == "" {
		rest = "/"
	}
	return rest, true
}

// delegatedCgroup finds the cgroup baton may manage: its own (or, when it
// already moved to its leaf, the leaf's parent), if delegated to it. It
// returns why not otherwise, and whether that deserves a warning (baton
// was told it is delegated, yet cannot use it).
func delegatedCgroup(claimed bool) (root, why string, warn bool) {
	ms, err := mounts()
	if err != nil {
		return "", fmt.Sprintf("read mounts: %v", err), claimed
	}
	m, ok := unified(ms)
	if !ok {
		return "", "no cgroup2 hierarchy is mounted (cgroup v1 only)", claimed
	}
	path, err := cgroupOf(0)
	if err != nil {
		return "", err.Error(), claimed
	}
	dir, ok := dirOf(m, path)
	if !ok {
		return "", fmt.Sprintf("baton's cgroup %s is outside the cgroup2 mount at %s", path, m.point), claimed
	}
	if filepath.Base(dir) == leafName {
		dir = filepath.Dir(dir)
	}
	if !claimed && !xattrDelegated(dir) {
		return "", fmt.Sprintf("baton's cgroup %s is not delegated to it (Delegate=yes in the unit)", dir), false
	}
	if !kernelAtLeast(5, 2) {
		return "", "the kernel cannot freeze a cgroup (cgroup v2's freezer, which kills a worker whole, needs Linux 5.2)", true
	}
	for _, p := range []string{dir, filepath.Join(dir, "cgroup.procs"), filepath.Join(dir, "cgroup.subtree_control")} {
		if err := unix.Access(p, unix.W_OK); err != nil {
			hint := ""
			if errors.Is(err, unix.EROFS) {
				hint = " (ProtectControlGroups=yes mounts the cgroup tree read-only)"
			}
			return "", fmt.Sprintf("cannot write %s: %v%s", p, err, hint), true
		}
	}
	return dir, "", false
}

// xattrDelegated reads the marks systemd puts on a delegated cgroup.
// trusted.* needs CAP_SYS_ADMIN to read; user.delegate is readable by the
// cgroup's owner, on systemd versions that set it.
func xattrDelegated(dir string) bool {
	buf := make([]byte, 8)
	for _, name := range []string{"trusted.delegate", "user.delegate"} {
		if n, err := unix.Getxattr(dir, name, buf); err == nil && n > 0 && buf[0] == '1' {
			return true
		}
	}
	return false
}

func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	rel := unix.ByteSliceToString(u.Release[:])
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// writeFile writes s in one write(2), as cgroupfs wants; create is for
// fake hierarchies in tests, where the files are not there by themselves.
func writeFile(path, s string, create bool) error {
	flags := os.O_WRONLY | os.O_TRUNC
	if create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	return errors.Join(err, f.Close())
}

// keyed reads a "key value" line from a flat keyed file such as
// cgroup.events or memory.stat.
func keyed(path, key string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}

// procs lists the processes in dir and in the cgroups below it.
func procs(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, os.ErrNotExist) {
				return nil // a sub-cgroup removed meanwhile
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && p != dir {
				return nil
			}
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
		return nil
	})
	return pids, err
}

// waitEmpty waits until no process is left in dir or below. cgroup.events
// signals POLLPRI when "populated" changes, so this sleeps in poll(2)
// rather than spinning; the poll is capped so that ctx is seen.
func waitEmpty(ctx context.Context, dir string) error {
	f, err := os.Open(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return fmt.Errorf("wait for %s to empty: %w", dir, err)
	}
	defer f.Close()
	buf := make([]byte, 512)
	for {
		n, err := f.ReadAt(buf, 0)
		if err != nil && n == 0 {
			return fmt.Errorf("wait for %s to empty: %w", dir, err)
		}
		if strings.Contains(string(buf[:n]), "populated 0") {
			return nil
		}
		wait := 100 * time.Millisecond
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			wait = max(time.Until(dl), 0)
		}
		if err := ctx.Err(); err != nil {
			left, _ := procs(dir)
			return fmt.Errorf("wait for %s to empty: processes %v remain: %w", dir, left, err)
		}
		fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLPRI}}
		if _, err := unix.Poll(fds, int(wait/time.Millisecond)+1); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("wait for %s to empty: %w", dir, err)
		}
	}
}

// removeTree removes dir and the cgroups below it, deepest first (a worker
// may have made cgroups of its own).
func removeTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range ents {
		if e.IsDir() {
			errs = append(errs, removeTree(filepath.Join(dir, e.Name())))
		}
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
	}
	return errors.Join(errs...)
}
