package contain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"syscall"

	"github.com/sirupsen/logrus"
)

// Kinds of Strategy, as Kind reports them.
const (
	KindCgroup       = "cgroup"
	KindProcessGroup = "process-group"
)

// EnvID is the environment variable that carries a worker's id to the
// worker and, by inheritance, to everything it executes. The
// process-group strategy reads it back from /proc/PID/environ to attribute
// processes that escaped their worker's session and were re-parented to
// baton.
const EnvID = "BATON_WORKER_ID"

// ErrUnsupported marks a limit that cannot be enforced where baton runs.
var ErrUnsupported = errors.New("cannot be enforced here")

// Limits are per-worker resource limits. The zero value limits nothing.
type Limits struct {
	// MemoryMax is written to the worker's memory.max, in bytes: above it
	// the kernel reclaims, then OOM-kills within the worker. Zero: no
	// limit.
	MemoryMax int64
	// CPUWeight is written to the worker's cpu.weight (1-10000, as
	// systemd's CPUWeight=): its share of CPU time against the other
	// workers and baton when the CPU is contended. Zero: the kernel's
	// default, 100.
	CPUWeight int
}

// Options configure Setup.
type Options struct {
	// Root, when set, is a cgroup2 directory to contain the workers below
	// instead of the one Setup detects; it must be writable, and baton
	// moves itself into Root/supervisor. For tests, and for cgroups
	// delegated by something other than systemd. An unusable Root is an
	// error, not a fallback.
	Root string
	// Delegated says that baton's unit has Delegate=yes (its Delegate
	// property, read over D-Bus). Without it Setup uses baton's cgroup only
	// if systemd marked it delegated (the trusted.delegate or user.delegate
	// extended attribute, which systemd sets on unified hierarchies only).
	Delegated bool
	// Log receives how baton contains its workers, and why not better.
	// Zero: logrus's standard logger.
	Log logrus.FieldLogger
}

// Strategy contains workers. It is safe for concurrent use.
type Strategy interface {
	// Kind is KindCgroup or KindProcessGroup, for logs and status.
	Kind() string
	// Prepare readies the limits for the workers New creates from now on
	// (it enables the cgroup controllers they need) and reports each limit
	// that cannot be enforced here, naming its setting (errors.Is
	// ErrUnsupported); New then leaves that limit out. Call it whenever the
	// configuration is loaded, at start and on every reload.
	Prepare(Limits) error
	// New makes the cell for a worker about to be spawned, with the limits
	// of l that Prepare readied (the others are left out). id must be
	// unique among the cells of this Strategy and its successors across an
	// exec-in-place upgrade (slot, generation and a sequence number do):
	// letters, digits, '.', '_' and '-', at most 64.
	New(id string, l Limits) (Cell, error)
	// Adopt makes the cell for a worker that a previous baton started and
	// handed over before executing this one in place. A worker that is not
	// contained yet (the previous baton used the other strategy) is moved
	// into its cell with all its descendants.
	Adopt(id string, pid int) (Cell, error)
	// Sweep kills and removes what belongs to workers no cell holds:
	// worker cgroups left by a baton that crashed, orphans of workers that
	// are gone. After an upgrade, call it once every handed-over worker is
	// adopted. It returns the ids it swept.
	Sweep(ctx context.Context) ([]string, error)
	// Owner says which worker pid belongs to: the id of a live cell.
	Owner(pid int) (id string, ok bool)
	// Orphans lists baton's children that are not workers: with the
	// process-group strategy, descendants of workers re-parented to baton
	// (plus any child baton started for itself). The caller reaps them
	// when they exit; Owner says whose they are. Nil with cgroups, where
	// nothing is re-parented to baton.
	Orphans() []int
	// Close releases what the strategy holds. It kills nothing: baton may
	// be about to execute itself in place.
	Close() error
}

// Cell contains one worker.
type Cell interface {
	// ID is the id the cell was made with.
	ID() string
	// SysProcAttr prepares the worker's spawn: it becomes a session leader
	// (as systemd makes every service) and, with cgroups, starts in its
	// cgroup. The parent-death signal (Pdeathsig) is the caller's to set;
	// the kernel sends it when the thread that forked the worker
	// ends, so the caller must spawn from one locked OS thread that outlives
	// every worker, and must execute itself in place (an upgrade) from that
	// same thread: execve(2) ends every other thread, which kills the
	// workers they forked.
	SysProcAttr(*syscall.SysProcAttr)
	// Env is what the worker's environment must hold besides the caller's
	// own variables: EnvID=id.
	Env() []string
	// Started records the worker's pid once it was forked.
	Started(pid int)
	// Reaped records that the worker was reaped just now. Its children were
	// re-parented to baton before that, so one look at baton's children
	// taken after it finds them, for every worker reaped before the look:
	// the kills of a hundred workers that exited together share one.
	Reaped()
	// Kill sends SIGKILL to the worker and everything it forked.
	Kill() error
	// Memory is the memory the worker and its descendants use, in bytes.
	Memory() (int64, error)
	// Close, after the worker was reaped, kills whatever it left behind,
	// waits (within ctx) until that is gone and removes the cell.
	Close(ctx context.Context) error
}

// Setup detects what this process may do and prepares it: the cgroup
// strategy (baton moves to its leaf cgroup) where its cgroup is delegated,
// else the process-group strategy (baton becomes a child subreaper). It is
// idempotent, so that a baton executed in place finds itself already in its
// leaf and its workers' cgroups still there (which it then Adopts).
func Setup(ctx context.Context, o Options) (Strategy, error) {
	log := o.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	if o.Root != "" {
		s, err := newCgroupStrategy(o.Root, log, false)
		if err != nil {
			return nil, err
		}
		s.logSetup()
		return s, nil
	}
	root, why, warn := delegatedCgroup(o.Delegated)
	if root != "" {
		s, err := newCgroupStrategy(root, log, false)
		if err == nil {
			s.logSetup()
			return s, nil
		}
		why, warn = err.Error(), true
	}
	s, err := newSessionStrategy(log)
	if err != nil {
		return nil, err
	}
	entry := log.WithField("reason", why)
	msg := "containing workers by sessions and a subreaper only: a descendant that leaves its worker's session is found by ancestry and environment, memory is summed per process, and limits cannot be enforced"
	if warn {
		entry.Warn(msg)
	} else {
		entry.Info(msg)
	}
	return s, nil
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func checkID(id string) error {
	if !idPattern.MatchString(id) || id == "." || id == ".." {
		return fmt.Errorf("worker id %q: want 1 to 64 letters, digits, '.', '_' or '-'", id)
	}
	return nil
}

func checkAdopt(id string, pid int) error {
	if err := checkID(id); err != nil {
		return err
	}
	if pid <= 1 || pid == os.Getpid() {
		return fmt.Errorf("adopt worker %s: pid %d is not a worker", id, pid)
	}
	return nil
}

// spawnAttr is what every worker gets, whatever the strategy.
func spawnAttr(a *syscall.SysProcAttr) {
	a.Setsid = true
	// A session leader cannot change its process group: setpgid after
	// setsid fails, and the session's group is already the worker's own.
	a.Setpgid, a.Pgid = false, 0
}

// limitErrors reports each limit set in l that reason says cannot be
// enforced, named as the config file names it.
func limitErrors(l Limits, reason func(controller string) string) error {
	var errs []error
	if l.MemoryMax > 0 {
		if r := reason("memory"); r != "" {
			errs = append(errs, fmt.Errorf("memory-max: %w: %s", ErrUnsupported, r))
		}
	}
	if l.CPUWeight > 0 {
		if r := reason("cpu"); r != "" {
			errs = append(errs, fmt.Errorf("cpu-weight: %w: %s", ErrUnsupported, r))
		}
	}
	return errors.Join(errs...)
}
