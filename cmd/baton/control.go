package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/contain"
	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/workers"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
)

// controlHandler carries out control requests on the running pool.
type controlHandler struct {
	sup   *workers.Supervisor
	flags *config.Flags
	args  []string
	log   logrus.FieldLogger
	// metricsSocket is the name of the socket baton serves metrics on.
	metricsSocket string
	up            *upgrader
	// workerControl is the config's worker-control, as of the last reload.
	workerControl atomic.Bool
	contain       contain.Strategy
	notes         *reloadNotifier
	// orphanSignal is the workers' parent-death signal, handed on to the
	// image an upgrade executes.
	orphanSignal syscall.Signal
}

// Reload re-reads the config (the file, with the same flags on top) and
// rolls a new generation. An invalid config changes nothing. When the
// binary on disk was replaced (a package upgrade), baton first executes the
// new one in place, which then rolls the workers.
func (h *controlHandler) Reload(ctx context.Context, wait bool) (string, error) {
	return h.reloadFor(ctx, wait, "baton reload")
}

// reloadFor is a reload asked for by what names (SIGHUP, baton reload),
// for the log.
func (h *controlHandler) reloadFor(ctx context.Context, wait bool, what string) (string, error) {
	if h.up != nil && h.up.changed() {
		return h.upgrade(ctx, what+": the binary on disk was replaced")
	}
	return h.reload(ctx, wait, what)
}

// reload rolls the workers with the config re-read, whatever the binary.
func (h *controlHandler) reload(ctx context.Context, wait bool, what string) (string, error) {
	cfg, err := h.flags.Resolve(h.args)
	if err == nil {
		_, err = cfg.CheckCommand(os.Getenv("PATH"))
	}
	if err != nil {
		// Told to the caller (systemctl reload shows it) and to baton's own
		// log, which is where an operator looks when SIGHUP was used: in
		// the message itself, which is what journalctl shows.
		h.log.Errorf("reload (%s) refused: invalid config or worker command, nothing changed: %v", what, err)
		h.sup.ReloadRefused(err)
		return "", fmt.Errorf("reload refused, nothing changed: %w", err)
	}
	current, ok := h.sup.Sockets()
	if !ok {
		return "", errors.New("baton is stopping")
	}
	if cfg.MetricsSocket != h.metricsSocket {
		h.log.Warnf("metrics-socket changes from %q to %q only at the next start", h.metricsSocket, cfg.MetricsSocket)
	}
	// The metrics socket is baton's own: never (re)bound for workers.
	var forWorkers []config.Socket
	for _, c := range cfg.Sockets {
		if c.Name != h.metricsSocket {
			forWorkers = append(forWorkers, c)
		}
	}
	set, opened, err := activation.Rebind(forWorkers, current)
	if err != nil {
		h.log.Errorf("reload (%s) refused, nothing changed: %v", what, err)
		h.sup.ReloadRefused(err)
		return "", fmt.Errorf("reload refused, nothing changed: %w", err)
	}
	h.workerControl.Store(cfg.WorkerControl)
	h.prepareLimits(cfg)
	if !wait {
		go func() {
			// The supervisor logs the outcome; only a request that never
			// reached it is left to say.
			if err := h.sup.Reload(context.Background(), cfg, set, what); err != nil && errors.Is(err, workers.ErrNotDelivered) {
				h.log.WithError(errors.Join(err, opened.Close())).Errorf("reload (%s)", what)
			}
		}()
		return "reload started", nil
	}
	err = h.sup.Reload(ctx, cfg, set, what)
	if errors.Is(err, workers.ErrNotDelivered) {
		err = errors.Join(err, opened.Close())
	}
	if err != nil {
		return "", err
	}
	snap, _ := h.sup.Snapshot()
	return fmt.Sprintf("reloaded: %s", snap.Status), nil
}

// prepareLimits readies the per-worker limits of cfg in the cells new
// workers get, and says which cannot be enforced here.
func (h *controlHandler) prepareLimits(cfg *config.Config) {
	if h.contain == nil {
		return
	}
	if err := h.contain.Prepare(contain.Limits{MemoryMax: cfg.MemoryMax, CPUWeight: cfg.CPUWeight}); err != nil {
		h.log.WithError(err).Warn("per-worker limits")
	}
}

// Scale adds or drains workers.
func (h *controlHandler) Scale(ctx context.Context, delta int) (string, error) {
	if err := h.sup.Scale(ctx, delta); err != nil {
		return "", err
	}
	return fmt.Sprintf("scaling by %+d", delta), nil
}

// controlFlag registers -s/--control, shared by the commands that talk to a
// running baton.
func controlFlag(fs *pflag.FlagSet) *string {
	return fs.StringP("control", "s", "", "baton's control `SOCKET` (default: the baton named, the unit's own under ExecReload=, or the only one running)")
}

// reloadCommand is `baton reload [--wait] [NAME]`, the unit's ExecReload=.
func reloadCommand(args []string) error {
	fs := newFlagSet("reload")
	wait := fs.Bool("wait", false, "return when the reload has finished, non-zero with the reason if it failed")
	path := controlFlag(fs)
	timeout := fs.Duration("timeout", 0, "give up waiting after this long (default: wait as long as it takes)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sock, err := findControl(*path, fs.Args(), "systemctl reload UNIT and SIGHUP reload too")
	if err != nil {
		return err
	}
	ctx := context.Background()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	start := time.Now()
	msg, err := control.Call(ctx, sock, control.Request{Command: "reload", Wait: *wait})
	if err != nil {
		return fmt.Errorf("reload failed: %w", err)
	}
	fmt.Printf("%s (%s)\n", msg, time.Since(start).Round(time.Millisecond))
	return nil
}

// Status reports the pool, with each worker's resident memory read now.
func (h *controlHandler) Status(context.Context) (*control.Status, error) {
	snap, ok := h.sup.Snapshot()
	if !ok {
		return nil, errors.New("baton is stopping")
	}
	st := &control.Status{
		Version: versionString(), PID: os.Getpid(),
		Generation: snap.Generation, Status: snap.Status, Workers: snap.Wanted, Ready: snap.Ready,
		Reloading: snap.Reloading, Recycled: snap.Recycled, Dropped: snap.Dropped,
		Pool: []control.WorkerStatus{}, Sockets: []control.SocketStatus{}, Reloads: []control.ReloadStatus{},
	}
	for _, w := range snap.Workers {
		ws := control.WorkerStatus{
			Slot: w.Slot, PID: w.PID, Generation: w.Generation, State: w.State.Phase(), Retiring: w.Retiring,
			Age: snap.Taken.Sub(w.Spawned).Seconds(), Status: w.Status,
		}
		if !w.LastHeartbeat.IsZero() {
			v := snap.Taken.Sub(w.LastHeartbeat).Seconds()
			ws.Heartbeat = &v
		}
		if !w.OldestRequest.IsZero() {
			v := snap.Taken.Sub(w.OldestRequest).Seconds()
			ws.Request = &v
		}
		if rss, err := h.sup.WorkerMemory(w.PID); err == nil {
			ws.RSS = &rss
		}
		st.Pool = append(st.Pool, ws)
	}
	for _, x := range snap.Sockets {
		st.Sockets = append(st.Sockets, control.SocketStatus{Name: x.Name, Address: x.Address, Origin: x.Origin})
	}
	for _, r := range snap.Reloads {
		st.Reloads = append(st.Reloads, control.ReloadStatus{Generation: r.Generation, Started: r.Started.UTC(), Duration: r.Duration.Seconds(), OK: r.Err == "", Error: r.Err})
	}
	return st, nil
}

// statusCommand is `baton status [--json] [NAME]`.
func statusCommand(args []string) error {
	fs := newFlagSet("status")
	asJSON := fs.Bool("json", false, "print JSON (a stable schema) instead of tables")
	path := controlFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sock, err := findControl(*path, fs.Args(), "")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := control.GetStatus(ctx, sock)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return st.WriteTable(os.Stdout)
}
