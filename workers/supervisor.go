package workers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/proc"
	"github.com/batonhq/baton/internal/sdnotify"
	"github.com/sirupsen/logrus"
)

// Notifier sends sd_notify state to baton's own service manager. The
// supervisor owns this small interface; cmd/baton passes an sdnotify.Sender
// (or nothing, outside systemd). Send should bound how long it blocks; the
// supervisor calls it from a goroutine of its own, never from its loop.
type Notifier interface {
	Send(state string, fds ...int) error
}

// FDStore is systemd's file descriptor store, where sockets baton bound
// itself outlive baton. cmd/baton passes its sdnotify.Sender.
type FDStore interface {
	FDStore(name string, fds ...int) error
	FDStoreRemove(name string) error
}

// Options configure a Supervisor. Zero values are documented per field.
type Options struct {
	// Config is the validated configuration. Required.
	Config *config.Config
	// Sockets are passed to every worker as fds 3... The supervisor owns
	// them from New on: it closes the ones a reload drops, and the rest when
	// Run returns (or on Close, when Run is never called).
	Sockets activation.Set
	// RuntimeDir is where the notify socket is created. Required; under
	// systemd, $RUNTIME_DIRECTORY.
	RuntimeDir string
	// Shim is the binary re-executed as the exec shim. Zero: os.Executable().
	Shim string
	// Env is the environment workers start from. Zero: os.Environ().
	Env []string
	// Upward receives baton's own READY=1, STATUS= and STOPPING=1. Zero:
	// nothing is sent.
	Upward Notifier
	// Log receives the supervisor's log lines. Zero: logrus's standard
	// logger.
	Log logrus.FieldLogger
	// Stdout and Stderr are the workers' output. Zero: baton's own.
	Stdout, Stderr *os.File
	// Store, when set, keeps the sockets baton binds in a reload (and
	// forgets the ones a reload drops). Zero: no fd store; cmd/baton stores
	// the sockets it bound at start itself.
	Store FDStore
	// Adopt, when set, is the pool a previous baton handed over before it
	// executed this one in place; the supervisor takes over its workers and
	// notify socket. Sockets must be SocketsFromHandoff(Adopt).
	Adopt *Handoff
	// OnOutput, when set, receives the workers' output line by line
	// instead, each with its worker, so logs say who wrote what. It is
	// called from one goroutine per worker stream.
	OnOutput func(Line)
	// Watchdog is baton's own WATCHDOG_USEC from systemd: the supervisor
	// sends WATCHDOG=1 at half this interval while the pool is healthy.
	// Zero: systemd watches nothing, nothing is sent.
	Watchdog time.Duration
	// Contain puts each worker in a cell of its own (internal/contain).
	// Zero: process groups and sessions only.
	Contain Containment
	// OrphanSignal is the signal a worker gets when baton dies without
	// stopping it, e.g. kill -9 (PR_SET_PDEATHSIG). Zero: SIGKILL, so
	// nothing outlives a baton killed outside systemd. SIGTERM lets the
	// workers finish the requests in flight first; cmd/baton sets it when
	// systemd waits for them (ExitType=cgroup) and bounds them (its
	// watchdog, or a stop).
	OrphanSignal syscall.Signal

	// spawner and now replace the process spawner and the clock in the
	// package's own fast tests.
	spawner spawner
	now     func() time.Time
}

// StopMode says how to stop the pool.
type StopMode int

const (
	// Graceful sends workers SIGTERM and waits graceful-timeout before
	// SIGKILL (systemctl stop, SIGTERM); drain-delay first, if set.
	Graceful StopMode = iota
	// Fast sends workers SIGINT and SIGKILLs what is left after
	// FastStopTimeout (Ctrl-C, SIGINT, SIGQUIT).
	Fast
)

// FastStopTimeout bounds a fast stop.
const FastStopTimeout = time.Second

// poolPhase is where the pool as a whole is.
type poolPhase int

const (
	phaseRunning  poolPhase = iota
	phaseDraining           // a graceful stop waits drain-delay, unready
	phaseStopping           // workers were told to stop
)

// Supervisor runs the pool. Create it with New, drive it with Run, and talk
// to it from other goroutines only through its methods, which send events.
type Supervisor struct {
	sockets  activation.Set
	shim     string
	env      []string
	log      logrus.FieldLogger
	stdout   *os.File
	stderr   *os.File
	onOutput func(Line)
	store    FDStore
	adopting *Handoff
	notify   *sdnotify.Listener
	now      func() time.Time
	spawner  spawner
	contain  Containment
	upward   *upwardQueue // nil: no manager above
	notifies bool         // Options.Upward was set
	watchdog time.Duration

	events   chan any
	requests chan any
	done     chan struct{}
	readable chan struct{} // datagrams wait on the notify socket
	readDone chan struct{} // the loop read them

	// Read from other goroutines.
	workerPIDs sync.Map    // pid → struct{}: the notify reader's fast path
	serving    atomic.Bool // ready >= min-ready, running
	unready    atomic.Bool // a stop was asked for

	// State below is owned by the Run goroutine.
	cfg                      *config.Config
	alarms                   alarmHeap
	pingAlarm, extendAlarm   alarm
	memAlarm, statusAlarm    alarm
	drainAlarm               alarm
	reloadExtendAlarm        alarm
	gen, lastGen             int
	slots                    []*slot
	byPID                    map[int]*worker
	byID                     map[string]*worker
	mainPIDs                 map[int]*worker
	nReady, nStarting, nNext int
	seq                      int
	phase                    poolPhase
	stopMode                 StopMode
	sentReady, everReady     bool
	withheld                 bool
	statusDirty              bool
	lastStatus               string
	nextStatus               time.Time
	graceUntil               time.Time
	dropped                  map[string]int
	droppedN                 int
	exits                    map[string]int // worker exits by reason
	spawns                   int
	exited                   map[int]bool // recently exited worker pids
	exitedRing               []int
	exitedNext               int
	rollout                  *rollout
	queued                   *reloadRequest
	held                     activation.Set // every socket owned, each closed once
	lastReloadErr            string
	reloads                  []ReloadResult
	reloadsOK, reloadsFailed int
	reloadSeconds            float64
	recycled                 int
	runErr                   error
	// sendUpHook replaces the upward queue in the package's fast tests.
	sendUpHook func(string)
}

// New validates options and creates the notify socket. Close releases it if
// Run is never called; Run closes it itself when it returns.
func New(o Options) (*Supervisor, error) {
	if o.Config == nil {
		return nil, errors.New("supervisor: no config")
	}
	if o.RuntimeDir == "" {
		return nil, errors.New("supervisor: no runtime directory")
	}
	if o.Shim == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("supervisor: find own binary for the exec shim: %w", err)
		}
		o.Shim = exe
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.Log == nil {
		o.Log = logrus.StandardLogger()
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.now == nil {
		o.now = time.Now
	}
	var l *sdnotify.Listener
	var err error
	if o.Adopt != nil {
		_ = setCloexec(o.Adopt.NotifyFD, true)
		l, err = sdnotify.ListenerFromFD(o.Adopt.NotifyFD, o.Adopt.NotifyPath)
	} else {
		l, err = sdnotify.Listen(filepath.Join(o.RuntimeDir, fmt.Sprintf("notify-%d.sock", os.Getpid())))
	}
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	s := &Supervisor{
		cfg: o.Config, sockets: o.Sockets, shim: o.Shim, env: baseEnv(o.Env),
		log: o.Log, stdout: o.Stdout, stderr: o.Stderr, onOutput: o.OnOutput, store: o.Store, adopting: o.Adopt,
		notify: l, now: o.now, watchdog: o.Watchdog, contain: o.Contain, spawner: o.spawner,
		events:   make(chan any, 1024),
		requests: make(chan any),
		done:     make(chan struct{}),
		readable: make(chan struct{}),
		readDone: make(chan struct{}, 1),
		byPID:    map[int]*worker{},
		byID:     map[string]*worker{},
		mainPIDs: map[int]*worker{},
		dropped:  map[string]int{},
		exits:    map[string]int{},
		exited:   map[int]bool{},
		gen:      1,
		lastGen:  1,
	}
	if s.spawner == nil {
		orphan := o.OrphanSignal
		if orphan == 0 {
			orphan = syscall.SIGKILL
		}
		s.spawner = &procSpawner{contain: o.Contain, orphanSignal: orphan, onError: func(err error) { s.log.Warn(err) }}
	}
	if o.Upward != nil || o.Store != nil {
		n := o.Upward
		if n == nil {
			n = discard{}
		}
		s.upward = newUpwardQueue(n, s.log)
		s.notifies = o.Upward != nil
	}
	s.pingAlarm = newAlarm(s.ping)
	s.extendAlarm = newAlarm(func(time.Time) { s.extendStop("") })
	s.memAlarm = newAlarm(s.pollMemory)
	s.statusAlarm = newAlarm(func(time.Time) {})
	s.drainAlarm = newAlarm(func(time.Time) { s.beginStop(Graceful) })
	s.reloadExtendAlarm = newAlarm(s.extendReload)
	s.hold(s.sockets)
	for i := 1; i <= s.cfg.Workers; i++ {
		s.slots = append(s.slots, s.newSlot(i, s.gen, s.cfg, s.sockets))
	}
	return s, nil
}

type discard struct{}

func (discard) Send(string, ...int) error { return nil }

// Close releases the notify socket of a Supervisor whose Run was never
// called.
func (s *Supervisor) Close() error {
	if s.upward != nil {
		s.upward.close(0)
	}
	return errors.Join(s.notify.Close(), s.sockets.Close())
}

// closeAllSockets closes every socket still held, when Run ends.
func (s *Supervisor) closeAllSockets() { s.closeSockets(append(activation.Set(nil), s.held...)) }

// NotifySocket is the path workers send to.
func (s *Supervisor) NotifySocket() string { return s.notify.Path() }

type stopRequest struct{ mode StopMode }

// Stop asks Run to stop the pool; Run returns once every worker is gone. It
// does not block beyond handing over the request. Serving turns false at
// once.
func (s *Supervisor) Stop(mode StopMode) {
	s.unready.Store(true)
	s.send(stopRequest{mode})
}

// flushWait bounds how long Run's end waits for baton's last messages to
// systemd (STOPPING=1, the final STATUS=).
const flushWait = 2 * time.Second

// Run spawns the pool and supervises it until Stop (or ctx's end, which is
// a fast stop) has stopped every worker. It returns nil after a clean
// stop, and an error that Is ErrNeverReady when it gave up because no
// worker of the first generation ever became ready.
func (s *Supervisor) Run(ctx context.Context) error {
	defer close(s.done)
	defer s.closeAllSockets()
	if s.upward != nil {
		defer s.upward.close(flushWait)
	}
	readerDone, stopReader := make(chan struct{}), make(chan struct{})
	go s.watchNotifications(stopReader, readerDone)
	defer func() {
		close(stopReader)
		if err := s.notify.Close(); err != nil {
			s.log.WithError(err).Warn("close notify socket")
		}
		<-readerDone
	}()

	s.log.WithFields(logrus.Fields{"workers": s.cfg.Workers, "sockets": s.sockets.Names(), "command": s.cfg.Command}).Info("starting pool")
	if s.adopting != nil {
		s.adopt(s.adopting)
		s.adopting = nil
	}
	s.sweep()
	for _, sl := range s.slots {
		if sl.w == nil {
			s.start(sl)
		}
	}
	if s.watchdog > 0 && s.notifies {
		s.ping(s.now())
	}
	s.publish()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var armedFor time.Time
	ctxDone := ctx.Done()
	for {
		if s.phase == phaseStopping && len(s.byPID) == 0 {
			s.log.Info("all workers stopped")
			s.publish()
			return s.runErr
		}
		armedFor = s.resetTimer(timer)
		select {
		case ev := <-s.events:
			s.handle(ev)
		case req := <-s.requests:
			s.answer(req)
		case <-s.readable:
			_, _ = s.readNotifications(readBatch)
			s.readDone <- struct{}{}
		case <-timer.C:
			now := s.now()
			late := now.Sub(armedFor)
			// Everything queued first: a heartbeat that arrived while the
			// loop was not running must count before any clock is judged.
			s.drainEvents()
			if late > stallThreshold {
				s.stalled(late, now)
			}
			s.fireAlarms(s.now())
		case <-ctxDone:
			ctxDone = nil
			s.beginStop(Fast)
		}
		s.publish()
	}
}

// resetTimer arms the timer for the earliest alarm and returns when that is.
func (s *Supervisor) resetTimer(t *time.Timer) time.Time {
	next := s.nextAlarm()
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	// Never longer than stallTick: a loop that wakes regularly can tell
	// how long it did not run.
	now := s.now()
	if next.IsZero() || next.After(now.Add(stallTick)) {
		next = now.Add(stallTick)
	}
	t.Reset(max(next.Sub(now), 0))
	return next
}

func (s *Supervisor) handle(ev any) {
	switch ev := ev.(type) {
	case execEvent:
		s.onExec(ev)
	case exitEvent:
		s.onExit(ev)
	case notifyEvent:
		s.onNotify(ev)
	case stopRequest:
		s.beginStop(ev.mode)
	case *reloadRequest:
		s.beginReload(ev)
	case scaleRequest:
		ev.reply <- s.scale(ev.delta)
	case handoffRequest:
		s.handoff(ev)
	case refusedEvent:
		s.refused(ev.err)
	case upEvent:
		s.sendUp(string(ev))
	}
}

// sweepWait bounds the start's clean-up of a crashed baton's leftovers.
const sweepWait = 10 * time.Second

// sweep kills what a baton that crashed left in its workers' cells.
func (s *Supervisor) sweep() {
	if s.contain == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sweepWait)
	defer cancel()
	ids, err := s.contain.Sweep(ctx)
	if err != nil {
		s.log.WithError(err).Warn("clean up leftovers of earlier workers")
	}
	if len(ids) > 0 {
		s.log.Warnf("killed what %d workers of an earlier baton left behind: %v", len(ids), ids)
	}
}

// WorkerMemory is what worker pid and everything it forked use, in bytes
// (its cgroup's, or summed over its processes). Safe from any goroutine.
func (s *Supervisor) WorkerMemory(pid int) (int64, error) {
	p, ok := s.workerPIDs.Load(pid)
	if !ok {
		return 0, fmt.Errorf("pid %d is not a worker", pid)
	}
	return p.(process).Memory()
}

// Owns reports whether pid is a worker or something a worker forked (its
// cgroup's, its process tree's), for the control socket, which refuses
// workers. Safe from any goroutine.
func (s *Supervisor) Owns(pid int) bool {
	if _, ok := s.workerPIDs.Load(pid); ok {
		return true
	}
	if s.contain != nil {
		if _, ok := s.contain.Owner(pid); ok {
			return true
		}
	}
	for _, p := range ancestry(pid)[1:] {
		if _, ok := s.workerPIDs.Load(p); ok {
			return true
		}
	}
	return false
}

// orphans is how many processes the reaper reaped that baton did not
// start.
func (s *Supervisor) orphans() int { return proc.Default().Orphans() }
