package contain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/batonhq/baton/internal/procfs"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// The layout below the delegated cgroup: baton in a leaf of its own (a
// cgroup with children may hold no processes once controllers are enabled
// in it), each worker in worker-ID beside it.
const (
	leafName     = "supervisor"
	workerPrefix = "worker-"
)

type cgroupStrategy struct {
	root string
	// path is root as /proc/PID/cgroup names it, for Owner; empty for a
	// fake hierarchy in tests.
	path   string
	mounts []mount
	log    logrus.FieldLogger
	// fake marks a hierarchy of plain files in tests: files are created
	// when written, directories removed with their contents.
	fake bool
	// noKill pretends cgroup.kill is missing (kernels before 5.14), so
	// tests reach the freezer path on any kernel.
	noKill bool
	// intoCgroup says workers start in their cgroup with clone3's
	// CLONE_INTO_CGROUP. Without it (Linux before 5.7, or a seccomp filter
	// that refuses clone3, as systemd's RestrictNamespaces= does), each
	// worker joins its cgroup itself before it executes its command: see
	// Enter.
	intoCgroup bool

	mu      sync.Mutex
	cells   map[string]*cgroupCell
	enabled map[string]bool // controllers on in root's cgroup.subtree_control
}

func newCgroupStrategy(root string, log logrus.FieldLogger, fake bool) (*cgroupStrategy, error) {
	root = filepath.Clean(root)
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("cgroup %s: want an absolute path", root)
	}
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		return nil, fmt.Errorf("cgroup %s: not a cgroup2 directory: %w", root, err)
	}
	s := &cgroupStrategy{root: root, log: log, fake: fake, cells: map[string]*cgroupCell{}, enabled: map[string]bool{}}
	s.intoCgroup = kernelAtLeast(5, 7) && clone3Allowed()
	ms, err := mounts()
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	s.mounts = ms
	if !fake {
		if s.path, _ = pathOf(ms, root); s.path == "" {
			return nil, fmt.Errorf("cgroup %s: not under a cgroup2 mount", root)
		}
	}
	leaf := filepath.Join(root, leafName)
	if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("make baton's own cgroup: %w", err)
	}
	// Idempotent: after an exec-in-place upgrade baton is there already.
	if err := writeFile(filepath.Join(leaf, "cgroup.procs"), strconv.Itoa(os.Getpid()), fake); err != nil {
		return nil, fmt.Errorf("move baton into %s: %w", leaf, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "cgroup.subtree_control")); err == nil {
		for _, c := range strings.Fields(string(b)) {
			s.enabled[strings.TrimPrefix(c, "+")] = true
		}
	}
	return s, nil
}

func (s *cgroupStrategy) Kind() string { return KindCgroup }

func (s *cgroupStrategy) logSetup() {
	spawn := "clone3 starts each worker in its cgroup"
	if !s.intoCgroup {
		spawn = "each worker joins its cgroup before it executes its command (clone3 is refused here)"
	}
	s.log.WithField("cgroup", s.root).WithField("spawn", spawn).Info("containing each worker in a cgroup of its own")
}

// controllers lists what each limit needs.
func controllers(l Limits) []string {
	var cs []string
	if l.CPUWeight > 0 {
		cs = append(cs, "cpu")
	}
	if l.MemoryMax > 0 {
		cs = append(cs, "memory")
	}
	return cs
}

func (s *cgroupStrategy) Prepare(l Limits) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := os.ReadFile(filepath.Join(s.root, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("read the controllers of %s: %w", s.root, err)
	}
	avail := strings.Fields(string(b))
	var enable []string
	for _, c := range controllers(l) {
		if !s.enabled[c] && slices.Contains(avail, c) {
			enable = append(enable, "+"+c)
		}
	}
	var werr error
	if len(enable) > 0 {
		// One write for all, as the kernel applies it all or nothing.
		if err := writeFile(filepath.Join(s.root, "cgroup.subtree_control"), strings.Join(enable, " "), s.fake); err != nil {
			werr = err
			if errors.Is(err, unix.EBUSY) {
				left, _ := os.ReadFile(filepath.Join(s.root, "cgroup.procs"))
				werr = fmt.Errorf("%w: processes %s are still in %s itself, not in a leaf", err, strings.Fields(string(left)), s.root)
			}
		} else {
			for _, c := range enable {
				s.enabled[c[1:]] = true
			}
		}
	}
	return limitErrors(l, func(c string) string {
		switch {
		case s.enabled[c]:
			return ""
		case !slices.Contains(avail, c) && v1Controller(s.mounts, c):
			return fmt.Sprintf("the %s controller is not available in %s: this host mounts it as a cgroup v1 hierarchy (hybrid cgroups), and baton uses cgroup v2 only", c, s.root)
		case !slices.Contains(avail, c):
			return fmt.Sprintf("the %s controller is not available in %s (under systemd, Delegate=yes delegates it)", c, s.root)
		}
		return fmt.Sprintf("enable the %s controller in %s: %v", c, s.root, werr)
	})
}

func (s *cgroupStrategy) dir(id string) string { return filepath.Join(s.root, workerPrefix+id) }

func (s *cgroupStrategy) New(id string, l Limits) (Cell, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.cells[id]; dup {
		return nil, fmt.Errorf("worker %s is contained already", id)
	}
	dir := s.dir(id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("make the cgroup of worker %s: %w", id, err)
	}
	c, err := s.open(id, dir, l)
	if err != nil {
		return nil, errors.Join(err, s.remove(dir))
	}
	return c, nil
}

// open makes the cell of an existing cgroup and applies the limits.
func (s *cgroupStrategy) open(id, dir string, l Limits) (*cgroupCell, error) {
	if l.MemoryMax > 0 && s.enabled["memory"] {
		if err := writeFile(filepath.Join(dir, "memory.max"), strconv.FormatInt(l.MemoryMax, 10), s.fake); err != nil {
			return nil, fmt.Errorf("worker %s: memory-max: %w", id, err)
		}
	}
	if l.CPUWeight > 0 && s.enabled["cpu"] {
		if err := writeFile(filepath.Join(dir, "cpu.weight"), strconv.Itoa(l.CPUWeight), s.fake); err != nil {
			return nil, fmt.Errorf("worker %s: cpu-weight: %w", id, err)
		}
	}
	// Not O_PATH: clone3 takes the cgroup from an fd that fdget accepts.
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the cgroup of worker %s: %w", id, err)
	}
	c := &cgroupCell{s: s, id: id, dir: dir, fd: fd}
	s.cells[id] = c
	return c, nil
}

func (s *cgroupStrategy) remove(dir string) error {
	if s.fake {
		return os.RemoveAll(dir)
	}
	return removeTree(dir)
}

func (s *cgroupStrategy) Adopt(id string, pid int) (Cell, error) {
	if err := checkAdopt(id, pid); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.cells[id]; dup {
		return nil, fmt.Errorf("worker %s is contained already", id)
	}
	dir := s.dir(id)
	made := false
	if err := os.Mkdir(dir, 0o755); err == nil {
		made = true
	} else if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("make the cgroup of worker %s: %w", id, err)
	}
	if err := s.migrate(pid, dir); err != nil {
		err = fmt.Errorf("adopt worker %s (pid %d): %w", id, pid, err)
		if made {
			err = errors.Join(err, s.remove(dir))
		}
		return nil, err
	}
	c, err := s.open(id, dir, Limits{})
	if err != nil {
		return nil, err
	}
	c.pid = pid
	return c, nil
}

// migrate moves pid and its descendants into dir unless they are in it
// already. Processes forked meanwhile follow their parent if it moved
// first; a few passes catch the others.
func (s *cgroupStrategy) migrate(pid int, dir string) error {
	want := ""
	if s.path != "" {
		want = s.path + "/" + filepath.Base(dir)
	}
	for pass := 0; pass < 5; pass++ {
		moved := 0
		for _, p := range append([]int{pid}, descendants(pid)...) {
			if want != "" {
				if cur, err := cgroupOf(p); err == nil && (cur == want || strings.HasPrefix(cur, want+"/")) {
					continue
				}
			}
			err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(p), s.fake)
			if err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("move pid %d into %s: %w", p, dir, err)
			}
			moved++
		}
		if moved == 0 || want == "" {
			return nil
		}
	}
	return nil
}

// descendants walks pid's process tree.
func descendants(pid int) []int {
	var out []int
	queue := []int{pid}
	seen := map[int]bool{pid: true}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		kids, _ := procfs.Children(p)
		for _, k := range kids {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
				queue = append(queue, k)
			}
		}
	}
	return out
}

func (s *cgroupStrategy) Sweep(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("sweep %s: %w", s.root, err)
	}
	var swept []string
	var errs []error
	for _, e := range ents {
		id, ok := strings.CutPrefix(e.Name(), workerPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		s.mu.Lock()
		_, held := s.cells[id]
		s.mu.Unlock()
		if held {
			continue
		}
		dir := filepath.Join(s.root, e.Name())
		err := s.kill(dir)
		if err == nil {
			err = waitEmpty(ctx, dir)
		}
		if err == nil {
			err = s.remove(dir)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep worker %s: %w", id, err))
			continue
		}
		swept = append(swept, id)
	}
	return swept, errors.Join(errs...)
}

func (s *cgroupStrategy) Owner(pid int) (string, bool) {
	if s.path == "" {
		return "", false
	}
	cg, err := cgroupOf(pid)
	if err != nil {
		return "", false
	}
	prefix := strings.TrimSuffix(s.path, "/") + "/" + workerPrefix
	rest, ok := strings.CutPrefix(cg, prefix)
	if !ok {
		return "", false
	}
	id, _, _ := strings.Cut(rest, "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, held := s.cells[id]; !held {
		return "", false
	}
	return id, true
}

func (s *cgroupStrategy) Orphans() []int { return nil }

func (s *cgroupStrategy) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for id, c := range s.cells {
		errs = append(errs, c.closeFD())
		delete(s.cells, id)
	}
	return errors.Join(errs...)
}
