package contain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/procfs"
	"golang.org/x/sys/unix"
)

// freezeKillWait bounds Kill on kernels without cgroup.kill (before 5.14),
// which freeze the cgroup and signal its processes one by one.
const freezeKillWait = 2 * time.Second

// kill SIGKILLs everything in dir: one write to cgroup.kill, or, before
// Linux 5.14, freeze, signal each process, thaw.
func (s *cgroupStrategy) kill(dir string) error {
	if !s.noKill {
		err := writeFile(filepath.Join(dir, "cgroup.kill"), "1", s.fake)
		if !errors.Is(err, os.ErrNotExist) {
			if err != nil {
				return fmt.Errorf("kill cgroup %s: %w", dir, err)
			}
			return nil
		}
	}
	return freezeKill(dir)
}

// freezeKill kills what is in dir without cgroup.kill. Frozen processes
// cannot fork, so one pass over cgroup.procs finds them all; SIGKILL still
// reaches a frozen process.
func freezeKill(dir string) error {
	freeze := filepath.Join(dir, "cgroup.freeze")
	if err := writeFile(freeze, "1", false); err != nil {
		return fmt.Errorf("freeze cgroup %s: %w", dir, err)
	}
	deadline := time.Now().Add(freezeKillWait)
	var err error
	for {
		// A process stuck in the kernel (D state) delays freezing; kill
		// what is there anyway and look again.
		frozen, _ := keyed(filepath.Join(dir, "cgroup.events"), "frozen")
		var pids []int
		if pids, err = procs(dir); err != nil {
			break
		}
		for _, p := range pids {
			if kerr := unix.Kill(p, unix.SIGKILL); kerr != nil && !errors.Is(kerr, unix.ESRCH) {
				err = fmt.Errorf("kill pid %d: %w", p, kerr)
			}
		}
		if len(pids) == 0 || frozen == 1 && err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if terr := writeFile(freeze, "0", false); terr != nil {
		err = errors.Join(err, fmt.Errorf("thaw cgroup %s: %w", dir, terr))
	}
	if err != nil {
		return fmt.Errorf("kill cgroup %s: %w", dir, err)
	}
	return nil
}

type cgroupCell struct {
	s   *cgroupStrategy
	id  string
	dir string

	mu  sync.Mutex
	fd  int // -1 once closed
	pid int
}

func (c *cgroupCell) ID() string { return c.id }

func (c *cgroupCell) SysProcAttr(a *syscall.SysProcAttr) {
	spawnAttr(a)
	a.UseCgroupFD, a.CgroupFD = false, 0
	if c.s.intoCgroup {
		c.mu.Lock()
		defer c.mu.Unlock()
		a.UseCgroupFD, a.CgroupFD = true, c.fd
	}
}

func (c *cgroupCell) Env() []string {
	env := []string{EnvID + "=" + c.id}
	if !c.s.intoCgroup {
		env = append(env, EnterEnv+"="+c.dir)
	}
	return env
}

func (c *cgroupCell) Started(pid int) {
	c.mu.Lock()
	c.pid = pid
	c.mu.Unlock()
	if c.s.intoCgroup {
		return
	}
	// The worker joins its cgroup itself (Enter) before it executes its
	// command; this move, from outside, covers a spawner that does not
	// call Enter, but a command that forks at once may beat it.
	err := writeFile(filepath.Join(c.dir, "cgroup.procs"), strconv.Itoa(pid), c.s.fake)
	if err != nil && !errors.Is(err, unix.ESRCH) {
		c.s.log.WithError(err).WithField("worker", c.id).Warn("cannot move the worker into its cgroup; what it forks is not contained")
	}
}

// Reaped is a no-op: a cgroup holds what the worker left behind wherever it
// was re-parented.
func (c *cgroupCell) Reaped() {}

func (c *cgroupCell) Kill() error {
	if err := c.s.kill(c.dir); err != nil {
		return fmt.Errorf("kill worker %s: %w", c.id, err)
	}
	return nil
}

// Memory is memory.current less the inactive file cache (the working set,
// as the kubelet counts it): page cache the worker merely read through is
// reclaimed before anything else and would otherwise recycle a worker that
// streams files. Where the memory controller is off (hybrid hosts), it is
// the resident memory of every process in the cgroup instead.
func (c *cgroupCell) Memory() (int64, error) {
	cur, err := keyedOrValue(filepath.Join(c.dir, "memory.current"))
	if errors.Is(err, os.ErrNotExist) {
		return sumRSS(procs(c.dir))
	}
	if err != nil {
		return 0, fmt.Errorf("memory of worker %s: %w", c.id, err)
	}
	if inactive, err := keyed(filepath.Join(c.dir, "memory.stat"), "inactive_file"); err == nil && inactive < cur {
		cur -= inactive
	}
	return cur, nil
}

func keyedOrValue(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// sumRSS adds up the resident memory of pids, skipping those that exited
// meanwhile.
func sumRSS(pids []int, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	var total int64
	for _, p := range pids {
		if rss, err := procfs.RSS(p); err == nil {
			total += rss
		}
	}
	return total, nil
}

func (c *cgroupCell) Close(ctx context.Context) error {
	s := c.s
	s.mu.Lock()
	if s.cells[c.id] == c {
		delete(s.cells, c.id)
	}
	s.mu.Unlock()
	err := c.closeFD()
	if pids, perr := procs(c.dir); perr == nil && len(pids) > 0 {
		err = errors.Join(err, s.kill(c.dir))
	}
	if werr := waitEmpty(ctx, c.dir); werr != nil && !s.fake {
		return errors.Join(err, fmt.Errorf("close worker %s: %w", c.id, werr))
	}
	if rerr := s.remove(c.dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("close worker %s: %w", c.id, rerr))
	}
	return err
}

func (c *cgroupCell) closeFD() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return nil
	}
	err := unix.Close(c.fd)
	c.fd = -1
	if err != nil {
		return fmt.Errorf("close the cgroup of worker %s: %w", c.id, err)
	}
	return nil
}
