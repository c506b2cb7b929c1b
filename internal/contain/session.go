package contain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/procfs"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// maxAncestry bounds the walk from a process up to its worker.
const maxAncestry = 64

// orphanTTL is how long Memory trusts an attribution of orphans.
const orphanTTL = time.Second

// sessionStrategy contains workers without cgroups. Every worker leads a
// session; baton is a child subreaper, so a descendant whose parent dies is
// re-parented to baton rather than to init. A worker's processes are then
// its process tree, plus the orphans re-parented to baton that carry its
// EnvID or belong to its session, plus their trees.
type sessionStrategy struct {
	self int
	log  logrus.FieldLogger

	mu    sync.Mutex
	cells map[string]*sessionCell
	byPID map[int]*sessionCell
	// attributed caches orphansOf's attribution, begun at attributedAt.
	attributed   map[*sessionCell][]int
	attributedAt time.Time
}

func newSessionStrategy(log logrus.FieldLogger) (*sessionStrategy, error) {
	// Kept across execve(2), so this is a no-op after an upgrade.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("become a child subreaper: %w", err)
	}
	return &sessionStrategy{self: os.Getpid(), log: log, cells: map[string]*sessionCell{}, byPID: map[int]*sessionCell{}}, nil
}

func (s *sessionStrategy) Kind() string { return KindProcessGroup }

func (s *sessionStrategy) Prepare(l Limits) error {
	return limitErrors(l, func(string) string {
		return "workers are contained by sessions only, without a cgroup of their own (under systemd, Delegate=yes gives them one)"
	})
}

func (s *sessionStrategy) New(id string, _ Limits) (Cell, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.cells[id]; dup {
		return nil, fmt.Errorf("worker %s is contained already", id)
	}
	c := &sessionCell{s: s, id: id}
	s.cells[id] = c
	return c, nil
}

func (s *sessionStrategy) Adopt(id string, pid int) (Cell, error) {
	if err := checkAdopt(id, pid); err != nil {
		return nil, err
	}
	c, err := s.New(id, Limits{})
	if err != nil {
		return nil, err
	}
	c.Started(pid)
	return c, nil
}

// started records a worker's pid; Started and Adopt go through it.
func (s *sessionStrategy) started(c *sessionCell, pid int) {
	st, _ := procfs.ReadStat(pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.pid > 0 && s.byPID[c.pid] == c {
		delete(s.byPID, c.pid)
	}
	c.pid, c.start = pid, st.Start
	s.byPID[pid] = c
}

// worker returns the live cell whose worker is pid, checking that pid was
// not reused by another process since (its start time differs).
func (s *sessionStrategy) worker(pid int, st *procfs.Stat) *sessionCell {
	c := s.byPID[pid]
	if c == nil {
		return nil
	}
	if st == nil {
		got, err := procfs.ReadStat(pid)
		if err != nil {
			return c // gone: the pid is not someone else's yet
		}
		st = &got
	}
	if c.start != 0 && st.Start != c.start {
		return nil
	}
	return c
}

// leader returns the cell whose worker leads the session sid, if a process
// that started at start can belong to it: the worker started before it,
// and the pid sid was not reused by a process other than the worker.
func (s *sessionStrategy) leader(sid int, start uint64) *sessionCell {
	c := s.byPID[sid]
	if c == nil || start < c.start {
		return nil
	}
	if st, err := procfs.ReadStat(sid); err == nil && c.start != 0 && st.Start != c.start {
		return nil
	}
	return c
}

// orphan attributes a process that is no worker's descendant any more
// (re-parented to baton) by the EnvID it inherited, else by its session.
// Call with s.mu held.
func (s *sessionStrategy) orphan(pid int, st procfs.Stat) *sessionCell {
	if id, ok := procfs.Getenv(pid, EnvID); ok {
		return s.cells[id] // nil when that worker's cell is gone
	}
	return s.leader(st.SID, st.Start)
}

// orphans lists baton's children that are not workers, alive.
func (s *sessionStrategy) orphans() []int {
	kids, _ := procfs.Children(s.self)
	var out []int
	for _, k := range kids {
		if s.byPID[k] != nil {
			continue
		}
		if st, err := procfs.ReadStat(k); err == nil && !st.Zombie() {
			out = append(out, k)
		}
	}
	return out
}

func (s *sessionStrategy) Orphans() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.orphans()
}

func (s *sessionStrategy) Owner(pid int) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.worker(pid, nil); c != nil {
		return c.id, true
	}
	p := pid
	for i := 0; i < maxAncestry && p != s.self; i++ {
		st, err := procfs.ReadStat(p)
		if err != nil {
			return "", false
		}
		// Most of a worker's processes stay in its session: one read.
		if c := s.leader(st.SID, st.Start); c != nil {
			return c.id, true
		}
		switch {
		case st.PPID == s.self:
			if c := s.orphan(p, st); c != nil {
				return c.id, true
			}
			return "", false
		case st.PPID <= 1:
			// Re-parented past baton (it was not a subreaper then):
			// only the inherited variable can tell.
			if id, ok := procfs.Getenv(pid, EnvID); ok && s.cells[id] != nil {
				return id, true
			}
			return "", false
		}
		if c := s.worker(st.PPID, nil); c != nil {
			return c.id, true
		}
		p = st.PPID
	}
	return "", false
}

// orphansOf returns the orphans attributed to c by a look at baton's
// children begun after notBefore. That look reads every child of baton,
// workers included (300 µs with 1,000 of them), so it is shared: Memory,
// which runs for every worker every poll, accepts one up to orphanTTL old;
// the Kill and Close of a worker reaped at t accept any begun after t, so
// that a reload's exits do not cost one look each (quadratic in workers).
// An orphan of c that died since the look may have left children of its
// own to baton: then c is looked at afresh. Call with s.mu held.
func (s *sessionStrategy) orphansOf(c *sessionCell, notBefore time.Time) []int {
	if s.attributed == nil || s.attributedAt.Before(notBefore) || !allAlive(s.attributed[c]) {
		s.attributed = map[*sessionCell][]int{}
		s.attributedAt = time.Now()
		for _, o := range s.orphans() {
			if st, err := procfs.ReadStat(o); err == nil {
				if oc := s.orphan(o, st); oc != nil {
					s.attributed[oc] = append(s.attributed[oc], o)
				}
			}
		}
	}
	return s.attributed[c]
}

// allAlive reports whether every pid is a live process, not a zombie.
func allAlive(pids []int) bool {
	for _, p := range pids {
		if st, err := procfs.ReadStat(p); err != nil || st.Zombie() {
			return false
		}
	}
	return true
}

// since is the moment after which c's orphans must be looked for: when its
// worker was reaped, else now.
func (s *sessionStrategy) since(c *sessionCell) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.reaped.IsZero() {
		return c.reaped
	}
	return time.Now()
}

// members lists c's live processes: its worker (unless it exited), the
// worker's tree, and the trees of the orphans attributed to c by a look at
// baton's children begun after notBefore.
func (s *sessionStrategy) members(c *sessionCell, notBefore time.Time) []int {
	s.mu.Lock()
	var roots []int
	if c.pid > 0 {
		if st, err := procfs.ReadStat(c.pid); err == nil && st.Start == c.start {
			roots = append(roots, c.pid)
		}
	}
	roots = append(roots, s.orphansOf(c, notBefore)...)
	s.mu.Unlock()
	var out []int
	for _, r := range roots {
		for _, p := range append([]int{r}, descendants(r)...) {
			if st, err := procfs.ReadStat(p); err == nil && !st.Zombie() {
				out = append(out, p)
			}
		}
	}
	return out
}

// kill stops c's processes until no new one appears (a stopped process
// cannot fork), then SIGKILLs them all: the freezer's method, by signals.
// One look at baton's children serves every pass: a process stopped in an
// earlier pass cannot die and leave children to baton, and what it forked
// before it stopped is in its tree.
func (s *sessionStrategy) kill(c *sessionCell) error {
	notBefore := s.since(c)
	seen := map[int]bool{}
	var all []int
	var errs []error
	for pass := 0; pass < 16; pass++ {
		found := 0
		for _, p := range s.members(c, notBefore) {
			if seen[p] {
				continue
			}
			seen[p] = true
			all = append(all, p)
			found++
			if err := unix.Kill(p, unix.SIGSTOP); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("stop pid %d: %w", p, err))
			}
		}
		if found == 0 {
			break
		}
	}
	for _, p := range all {
		if err := unix.Kill(p, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("kill pid %d: %w", p, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kill worker %s: %w", c.id, err)
	}
	return nil
}

func (s *sessionStrategy) Sweep(ctx context.Context) ([]string, error) {
	var swept []string
	var errs []error
	s.mu.Lock()
	var stale []int
	for _, o := range s.orphans() {
		if id, ok := procfs.Getenv(o, EnvID); ok && s.cells[id] == nil {
			stale = append(stale, o)
			if !slices.Contains(swept, id) {
				swept = append(swept, id)
			}
		}
	}
	s.mu.Unlock()
	var killed []int
	for _, o := range stale {
		for _, p := range append([]int{o}, descendants(o)...) {
			killed = append(killed, p)
			if err := unix.Kill(p, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("sweep pid %d: %w", p, err))
			}
		}
	}
	for _, p := range killed {
		for procfs.Alive(p) {
			select {
			case <-ctx.Done():
				return swept, errors.Join(append(errs, fmt.Errorf("sweep: pid %d survives: %w", p, ctx.Err()))...)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return swept, errors.Join(errs...)
}

func (s *sessionStrategy) Close() error { return nil }

type sessionCell struct {
	s  *sessionStrategy
	id string
	// pid, start (its start time) and reaped (when the worker was reaped)
	// are guarded by s.mu.
	pid    int
	start  uint64
	reaped time.Time
}

func (c *sessionCell) ID() string { return c.id }

func (c *sessionCell) SysProcAttr(a *syscall.SysProcAttr) {
	spawnAttr(a)
	a.UseCgroupFD, a.CgroupFD = false, 0
}

func (c *sessionCell) Env() []string { return []string{EnvID + "=" + c.id} }

func (c *sessionCell) Started(pid int) { c.s.started(c, pid) }

func (c *sessionCell) Reaped() {
	c.s.mu.Lock()
	c.reaped = time.Now()
	c.s.mu.Unlock()
}

func (c *sessionCell) Kill() error { return c.s.kill(c) }

// Memory sums the resident memory of the worker's processes. Pages shared
// between them (a pre-forked application's copy-on-write heap, shared
// libraries) count once per process; page cache, kernel memory and
// processes that escaped both session and ancestry without the worker's
// EnvID do not count.
func (c *sessionCell) Memory() (int64, error) {
	return sumRSS(c.s.members(c, time.Now().Add(-orphanTTL)), nil)
}

func (c *sessionCell) Close(ctx context.Context) error {
	s := c.s
	var err error
	for notBefore := s.since(c); ; notBefore = time.Now() {
		left := s.members(c, notBefore)
		if len(left) == 0 {
			break
		}
		if err = s.kill(c); err != nil {
			break
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("close worker %s: processes %v remain: %w", c.id, left, ctx.Err())
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cells[c.id] == c {
		delete(s.cells, c.id)
	}
	if c.pid > 0 && s.byPID[c.pid] == c {
		delete(s.byPID, c.pid)
	}
	delete(s.attributed, c)
	return err
}
