package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/contain"
	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/logging"
	"github.com/batonhq/baton/internal/metrics"
	"github.com/batonhq/baton/internal/proc"
	"github.com/batonhq/baton/internal/sdbus"
	"github.com/batonhq/baton/internal/sdnotify"
	"github.com/batonhq/baton/internal/unitcheck"
	"github.com/batonhq/baton/workers"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

func runCommand(args []string) error {
	stopPipes := catchBrokenPipes()
	defer stopPipes()
	sigs, stopSignals := notifySignals()
	defer stopSignals()
	fs := newFlagSet("run")
	flags, logFormat, logLevel, controlPath := bindRunFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// Every flag also comes from BATON_<FLAG>, for containers (flags >
	// environment > file).
	if err := flags.ApplyEnv(os.LookupEnv); err != nil {
		return err
	}
	cfg, err := flags.Resolve(fs.Args())
	if err != nil {
		return err
	}
	log, err := logging.New(*logFormat, *logLevel, os.Stderr)
	if err != nil {
		return usageError{err}
	}
	adopted, err := takeUpgradeState()
	if err != nil {
		return err
	}
	// A worker command that cannot be executed would only crash-loop: stop
	// now, naming it. After an upgrade in place the running workers are
	// adopted whatever the command, and the reload that follows refuses.
	if _, err := cfg.CheckCommand(os.Getenv("PATH")); err != nil {
		if adopted == nil {
			return err
		}
		log.WithError(err).Warn("the worker command cannot be executed; the adopted workers go on")
	}
	up, err := newUpgrader()
	if err != nil {
		return err
	}

	// Under systemd: the notify socket upwards, and the unit's settings,
	// read once, for the checks and to tell sockets of .socket units from
	// fd store entries.
	var upward *sdnotify.Sender
	var unit *sdbus.Service
	switch s, err := sdnotify.SenderFromEnv(); {
	case err == nil:
		upward = s
		if adopted == nil {
			unit = readOwnUnit(log)
		}
	case !errors.Is(err, sdnotify.ErrNoSocket):
		return err
	}

	var sockets activation.Set
	var metricsSock *activation.Socket
	if adopted != nil {
		// Executed in place by the baton before: everything is already open.
		sockets = workers.SocketsFromHandoff(adopted.Handoff)
		if adopted.MetricsFD >= 0 {
			metricsSock = &activation.Socket{Name: adopted.MetricsName, Addr: adopted.MetricsAddr, Origin: activation.Origin(adopted.MetricsOrigin), File: os.NewFile(uintptr(adopted.MetricsFD), adopted.MetricsName)}
			unix.CloseOnExec(adopted.MetricsFD)
			defer metricsSock.Close()
		}
	} else {
		inherited, err := activation.Inherit(activation.OSEnviron())
		if err != nil {
			return err
		}
		// Nothing baton inherited by accident may reach a worker.
		if err := activation.SealInheritedFDs(activation.ListenFDsStart + len(inherited)); err != nil {
			return errors.Join(err, inherited.Close())
		}
		var notes []string
		sockets, notes, err = activation.Resolve(cfg.Sockets, inherited)
		if err != nil {
			return errors.Join(err, inherited.Close())
		}
		for _, n := range notes {
			log.Warn(n)
		}
		sockets = dropStale(sockets, cfg, unit, upward, log)
	}
	for _, s := range sockets {
		log.WithFields(logrus.Fields{"socket": s.Name, "address": s.Addr, "origin": s.Origin}).Infof("socket %s on %s (%s)", s.Name, s.Addr, s.Origin)
	}
	if cfg.MetricsSocket != "" && adopted == nil {
		sockets, metricsSock = splitSocket(sockets, cfg.MetricsSocket)
		if metricsSock == nil {
			return errors.Join(&config.Error{File: cfg.Path, Key: "metrics-socket", Err: fmt.Errorf("no socket named %q: configure [sockets.%s] or pass it from systemd with FileDescriptorName=%s", cfg.MetricsSocket, cfg.MetricsSocket, cfg.MetricsSocket)}, sockets.Close())
		}
		defer metricsSock.Close()
	}
	if len(sockets) == 0 {
		log.Warn("no sockets: none passed by systemd and none configured (-b); workers get no LISTEN_FDS")
	}

	reg, err := register(adopted, unit, log)
	if err != nil {
		return errors.Join(err, sockets.Close())
	}
	// After an exec in place the new image owns the registration; a
	// failed one leaves this process owning it still.
	defer func() {
		if err := reg.Close(); err != nil {
			log.WithError(err).Warn("remove runtime directory")
		}
	}()
	runtimeDir := reg.Dir

	if unit != nil {
		reportUnit(cfg, unit, log)
	}
	var notifier workers.Notifier
	var store workers.FDStore
	notes := &reloadNotifier{}
	var adoptedEpoch uint64
	if adopted != nil {
		adoptedEpoch = notes.adopt(adopted.Handoff.SentReady, adopted.Reloading)
	}
	if upward != nil {
		notes.up = upward
		notifier, store = notes, upward
		if adopted == nil {
			storeBound(sockets, metricsSock, upward, log)
		}
	}
	// systemd's watchdog on baton itself (WatchdogSec=), checked against
	// WATCHDOG_PID as sd_watchdog_enabled(3) does.
	watchdog, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return errors.Join(fmt.Errorf("systemd watchdog: %w", err), sockets.Close())
	}
	if watchdog > 0 {
		log.Infof("systemd watchdog on baton: %s; sending WATCHDOG=1 while the pool is healthy", watchdog)
	}

	orphan := orphanSignal(unit, adopted, log)
	cells, err := containment((unit != nil && unit.Delegate) || (adopted != nil && adopted.Cgroups), log)
	if err != nil {
		return errors.Join(err, sockets.Close())
	}
	defer func() {
		if err := cells.Close(); err != nil {
			log.WithError(err).Warn("containment")
		}
	}()

	sup, err := workers.New(workers.Options{
		Config: cfg, Sockets: sockets, RuntimeDir: runtimeDir, Upward: notifier, Store: store, Log: log, Watchdog: watchdog, Adopt: handoffOf(adopted),
		OnOutput: workerOutput(log, cfg.Command[0]), Contain: cells, OrphanSignal: orphan,
		// The BATON_* settings are baton's, not the workers'.
		Env: flags.WithoutEnv(os.Environ()),
	})
	if err != nil {
		return errors.Join(err, sockets.Close())
	}
	// From here the supervisor owns the sockets.

	handler := &controlHandler{sup: sup, flags: flags, args: fs.Args(), log: log, metricsSocket: cfg.MetricsSocket, up: up, contain: cells, notes: notes, orphanSignal: orphan}
	handler.prepareLimits(cfg)
	published := *controlPath == ""
	if published {
		*controlPath = filepath.Join(runtimeDir, control.SocketName)
	}
	var ctl *control.Server
	if adopted != nil {
		ctl, err = control.ListenFD(adopted.ControlFD, adopted.ControlPath, handler)
	} else {
		ctl, err = control.Listen(*controlPath, handler)
	}
	if err != nil {
		return errors.Join(err, sup.Close())
	}
	up.ctl, up.metricsSock, up.reg = ctl, metricsSock, reg
	ctl.OnError = func(err error) { log.WithError(err).Warn("control socket") }
	handler.workerControl.Store(cfg.WorkerControl)
	ctl.IsWorker, ctl.AllowWorkers = workerCheck(cells), handler.workerControl.Load
	if published && reg.Entry != "" {
		// Clients find it from now on: by name, by pid, or as the only one.
		if err := reg.Publish(); err != nil {
			log.WithError(err).Warn("baton status and reload need --control")
		}
	}
	switch {
	case published && reg.Entry != "":
		log.Infof("control socket at %s (baton status %s)", ctl.Path(), filepath.Base(reg.Entry))
	default:
		log.Infof("control socket at %s (baton status --control %s)", ctl.Path(), ctl.Path())
	}
	ctx, stopControl := context.WithCancel(context.Background())
	ctlDone := make(chan error, 1)
	go func() { ctlDone <- ctl.Serve(ctx) }()
	metricsDone := make(chan error, 1)
	if metricsSock != nil {
		l, err := net.FileListener(metricsSock.File)
		if err != nil {
			stopControl()
			return errors.Join(fmt.Errorf("metrics socket %s: %w", metricsSock.Name, err), <-ctlDone, sup.Close())
		}
		h, err := metrics.Handler(sup.Snapshot)
		if err != nil {
			stopControl()
			return errors.Join(err, l.Close(), <-ctlDone, sup.Close())
		}
		h = withProbes(h, sup)
		log.Infof("metrics on %s (%s) at /metrics, probes at /livez and /readyz", metricsSock.Name, metricsSock.Addr)
		go func() {
			metricsDone <- metrics.Serve(ctx, l, h, func(err error) { log.WithError(err).Warn("metrics socket") })
		}()
	} else {
		metricsDone <- nil
	}

	if adopted != nil {
		go handler.finishUpgrade(adopted, adoptedEpoch)
	}

	// Queued since the start of run (notifySignals).
	go handleSignals(sigs, sup, handler, notes, log)
	runErr := sup.Run(context.Background())
	stopControl()
	return errors.Join(runErr, <-ctlDone, <-metricsDone)
}

// bindRunFlags registers baton run's flags: the settings, and run's own.
// baton check --kubernetes parses a container's arguments with them.
func bindRunFlags(fs *pflag.FlagSet) (flags *config.Flags, logFormat, logLevel, controlPath *string) {
	fs.SetInterspersed(false) // everything after the program is its own
	flags = config.BindFlags(fs)
	logFormat = fs.String("log-format", "auto", "log `FORMAT`: auto (journal when stderr is journald's, else text), text, json or journal")
	logLevel = fs.String("log-level", "info", "log `LEVEL`: debug, info, warning, error")
	controlPath = fs.String("control", "", "control `SOCKET` for baton reload and status (default: control.sock in $RUNTIME_DIRECTORY, else in the registry, see baton(8))")
	return flags, logFormat, logLevel, controlPath
}

// handleSignals carries out each signal and logs its outcome: nothing an
// operator asks for disappears without a line.
func handleSignals(sigs <-chan os.Signal, sup *workers.Supervisor, handler *controlHandler, notes *reloadNotifier, log logrus.FieldLogger) {
	for sig := range sigs {
		name := unix.SignalName(sig.(syscall.Signal))
		switch sig {
		case syscall.SIGTERM:
			log.Infof("%s: graceful stop", name)
			sup.Stop(workers.Graceful)
		case syscall.SIGINT, syscall.SIGQUIT:
			log.Infof("%s: fast stop", name)
			sup.Stop(workers.Fast)
		case syscall.SIGHUP:
			log.Infof("%s: reload", name)
			// Answered before the config is even read: systemd
			// (Type=notify-reload) waits for RELOADING=1, then READY=1.
			epoch, err := notes.begin()
			if err != nil {
				log.WithError(err).Warnf("%s: cannot tell systemd that a reload began", name)
			}
			go func() {
				// A failure was logged where it happened (refused here, or
				// by the supervisor's rollout); success is said here.
				msg, err := handler.reloadFor(context.Background(), true, name)
				if err == nil {
					log.Infof("%s: %s", name, msg)
				} else if !errors.Is(err, workers.ErrReloadFailed) {
					log.WithError(err).Errorf("%s: no reload", name)
				}
				if nerr := notes.end(epoch, rolled(err)); nerr != nil {
					log.WithError(nerr).Warnf("%s: cannot tell systemd that the reload ended", name)
				}
			}()
		case syscall.SIGUSR2:
			log.Infof("%s: upgrade in place", name)
			go func() {
				if _, err := handler.upgrade(context.Background(), name); err != nil {
					log.WithError(err).Errorf("%s: no upgrade", name)
				}
			}()
		case syscall.SIGUSR1:
			log.Infof("%s: ignored (baton writes to stderr and the journal, and has no log file to reopen)", name)
		case syscall.SIGTTIN, syscall.SIGTTOU:
			delta := 1
			if sig == syscall.SIGTTOU {
				delta = -1
			}
			go func() {
				if msg, err := handler.Scale(context.Background(), delta); err != nil {
					log.WithError(err).Warnf("%s: not scaled", name)
				} else {
					log.Infof("%s: %s", name, msg)
				}
			}()
		}
	}
}

// containment sets up how workers are contained: a cgroup each under a
// delegated cgroup (Delegate=yes), else sessions and a subreaper. Either
// way, and as PID 1, the reaper then reaps every child: orphans of
// workers (and, as PID 1, of anyone) are re-parented to baton.
func containment(delegated bool, log logrus.FieldLogger) (contain.Strategy, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := contain.Setup(ctx, contain.Options{Delegated: delegated, Log: log})
	if err != nil {
		return nil, fmt.Errorf("contain workers: %w", err)
	}
	if st.Kind() == contain.KindProcessGroup || os.Getpid() == 1 {
		proc.Default().ReapAll(func(e proc.Exit) {
			log.WithField("pid", e.PID).Debugf("reaped orphan %d", e.PID)
		})
	}
	return st, nil
}

// splitSocket takes the socket called name out of set.
func splitSocket(set activation.Set, name string) (activation.Set, *activation.Socket) {
	var rest activation.Set
	var found *activation.Socket
	for _, s := range set {
		if s.Name == name && found == nil {
			found = s
			continue
		}
		rest = append(rest, s)
	}
	return rest, found
}

// orphanSignal chooses what a worker gets when baton dies without
// stopping it (kill -9, a crash). Under ExitType=cgroup systemd waits for
// the workers before it restarts baton, and its watchdog bounds them:
// SIGTERM lets them finish the requests in flight. Everywhere else,
// SIGKILL: under ExitType=main systemd kills them at once anyway, and
// outside systemd nothing else would.
func orphanSignal(unit *sdbus.Service, adopted *upgradeState, log logrus.FieldLogger) syscall.Signal {
	if adopted != nil && adopted.OrphanSignal != 0 {
		return syscall.Signal(adopted.OrphanSignal)
	}
	if unit != nil && unit.ExitType == "cgroup" {
		log.Info("ExitType=cgroup: should baton die, its workers get SIGTERM, finish the requests in flight and exit; systemd restarts baton once they are gone")
		return syscall.SIGTERM
	}
	return syscall.SIGKILL
}

// readOwnUnit reads baton's own unit from systemd over D-Bus; nil when it
// cannot (the checks and stale-socket cleanup are then skipped, said once).
func readOwnUnit(log logrus.FieldLogger) *sdbus.Service {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := sdbus.Connect(ctx)
	if err != nil {
		log.WithError(err).Info("cannot read the unit's settings over D-Bus; not checking them")
		return nil
	}
	defer conn.Close()
	name, err := conn.UnitOf(ctx, os.Getpid())
	if err == nil {
		var svc *sdbus.Service
		if svc, err = conn.Service(ctx, name); err == nil {
			return svc
		}
	}
	log.WithError(err).Info("cannot read the unit's settings over D-Bus; not checking them")
	return nil
}

// reportUnit logs every inconsistency between the config and the unit.
func reportUnit(cfg *config.Config, svc *sdbus.Service, log logrus.FieldLogger) {
	for _, f := range unitcheck.Check(cfg, svc) {
		entry := log.WithField("unit", svc.Unit)
		if f.Severity == unitcheck.Error {
			entry.Error(f.String())
		} else {
			entry.Warn(f.String())
		}
	}
}

// dropStale closes inherited sockets that neither the config nor one of
// the unit's .socket units names: fd store entries of a socket the config
// no longer has. They are dropped from the store too.
func dropStale(set activation.Set, cfg *config.Config, svc *sdbus.Service, store *sdnotify.Sender, log logrus.FieldLogger) activation.Set {
	if svc == nil || store == nil {
		return set
	}
	named := map[string]bool{cfg.MetricsSocket: true}
	for _, c := range cfg.Sockets {
		named[c.Name] = true
	}
	for _, n := range svc.SocketNames {
		named[n] = true
	}
	var keep activation.Set
	for _, s := range set {
		if s.Origin != activation.Inherited || named[s.Name] {
			keep = append(keep, s)
			continue
		}
		log.Warnf("socket %s (%s) came back from the fd store but the config no longer names it: closing it and dropping it from the store", s.Name, s.Addr)
		if err := errors.Join(s.Close(), store.FDStoreRemove(s.Name)); err != nil {
			log.WithError(err).Warnf("socket %s", s.Name)
		}
	}
	return keep
}

// storeBound hands the sockets baton bound itself to systemd's fd store,
// so that they outlive restarts and crashes of baton.
func storeBound(set activation.Set, metricsSock *activation.Socket, store *sdnotify.Sender, log logrus.FieldLogger) {
	all := set
	if metricsSock != nil {
		all = append(append(activation.Set{}, set...), metricsSock)
	}
	for _, s := range all {
		if s.Origin != activation.Bound {
			continue
		}
		if err := store.FDStore(s.Name, int(s.File.Fd())); err != nil {
			log.WithError(err).Warnf("socket %s: fd store", s.Name)
			continue
		}
		log.Infof("socket %s handed to systemd's fd store", s.Name)
	}
}

func handoffOf(st *upgradeState) *workers.Handoff {
	if st == nil {
		return nil
	}
	return st.Handoff
}

// workerOutput logs a worker's line with its worker's fields. A line that
// starts with a syslog priority, "<3>...", keeps it, as journald would.
func workerOutput(log logrus.FieldLogger, command string) func(workers.Line) {
	ident := filepath.Base(command)
	return func(l workers.Line) {
		level, text := logrus.InfoLevel, l.Text
		if len(text) >= 3 && text[0] == '<' && text[2] == '>' && text[1] >= '0' && text[1] <= '7' {
			level = [...]logrus.Level{logrus.ErrorLevel, logrus.ErrorLevel, logrus.ErrorLevel, logrus.ErrorLevel,
				logrus.WarnLevel, logrus.InfoLevel, logrus.InfoLevel, logrus.DebugLevel}[text[1]-'0']
			text = text[3:]
		}
		log.WithFields(logrus.Fields{
			"worker": l.Slot, "pid": l.PID, "generation": l.Generation, "stream": l.Stream, "syslog_identifier": ident,
		}).Log(level, text)
	}
}
