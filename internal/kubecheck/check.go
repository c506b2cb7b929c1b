package kubecheck

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/health"
	"github.com/spf13/pflag"
)

// Severity says whether a finding breaks a guarantee (Error) or weakens
// one (Warning).
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Finding is one inconsistency between baton's settings and its workload.
type Finding struct {
	Severity Severity
	Where    string // "deployment/web, container baton"
	Problem  string
	Fix      string // what to set instead; may be empty
}

func (f Finding) String() string {
	s := f.Where + ": " + string(f.Severity) + ": " + f.Problem
	if f.Fix != "" {
		s += "; set " + f.Fix
	}
	return s
}

// Margin is the time the grace period leaves baton beyond drain-delay and
// graceful-timeout: for the SIGKILLs at the end of graceful-timeout, the
// reaping and baton's own exit.
const Margin = 5 * time.Second

// DefaultGracePeriod is what Kubernetes gives a pod without
// terminationGracePeriodSeconds.
const DefaultGracePeriod = 30 * time.Second

// Options say how to read the workload.
type Options struct {
	// Bind registers baton run's flags on a flag set and returns the
	// settings among them; the container's arguments are parsed with it.
	// Required.
	Bind func(*pflag.FlagSet) *config.Flags
	// ConfigFile, when set, is the config file: it stands for the one the
	// container names (--config, BATON_CONFIG), which lives in the image or
	// a volume. Zero: the file is read from a ConfigMap in the manifests
	// mounted where the container's --config points.
	ConfigFile string
	// Container is baton's container. Zero: the pod's only container, else
	// the one called baton.
	Container string
}

// Check checks every workload in m. It fails only when there is nothing to
// check: no workload, or no container to pick.
func Check(m *Manifests, o Options) ([]Finding, error) {
	if len(m.Workloads) == 0 {
		return nil, errors.New("no Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet or Job in the manifests")
	}
	var out []Finding
	for _, w := range m.Workloads {
		c, err := pickContainer(w, o.Container)
		if err != nil {
			return nil, err
		}
		out = append(out, checkContainer(w, c, m, o)...)
	}
	return out, nil
}

func pickContainer(w Workload, name string) (Container, error) {
	var names []string
	for _, c := range w.Pod.Containers {
		if c.Name == name {
			return c, nil
		}
		names = append(names, c.Name)
	}
	if name == "" {
		if len(w.Pod.Containers) == 1 {
			return w.Pod.Containers[0], nil
		}
		for _, c := range w.Pod.Containers {
			if c.Name == "baton" {
				return c, nil
			}
		}
		return Container{}, fmt.Errorf("%s (%s): which container runs baton? pass --container, one of %s", w, w.Source, strings.Join(names, ", "))
	}
	return Container{}, fmt.Errorf("%s (%s): no container %q, only %s", w, w.Source, name, strings.Join(names, ", "))
}

type checker struct {
	where string
	out   []Finding
}

func (c *checker) add(sev Severity, fix, format string, args ...any) {
	c.out = append(c.out, Finding{Severity: sev, Where: c.where, Problem: fmt.Sprintf(format, args...), Fix: fix})
}

func checkContainer(w Workload, ctr Container, m *Manifests, o Options) []Finding {
	c := &checker{where: fmt.Sprintf("%s, container %s", w, ctr.Name)}
	args, ok := runArgs(c, ctr)
	if !ok {
		return c.out
	}
	cfg, err := resolve(ctr, args, w, m, o)
	if err != nil {
		c.add(Error, "", "baton would not start: %v", err)
		return c.out
	}
	c.grace(w, ctr, cfg)
	c.probes(ctr, cfg)
	c.sockets(cfg)
	return c.out
}

// runArgs finds baton run's arguments in the container's command and
// args. Without command, the image's ENTRYPOINT is taken to be
// "baton run", as deploy/Dockerfile makes it.
func runArgs(c *checker, ctr Container) ([]string, bool) {
	argv := append(append([]string(nil), ctr.Command...), ctr.Args...)
	if len(ctr.Command) == 0 {
		if len(ctr.Args) > 0 && ctr.Args[0] == "run" {
			argv = append([]string{"baton"}, ctr.Args...)
		} else {
			argv = append([]string{"baton", "run"}, ctr.Args...)
		}
	}
	if len(argv) > 2 && isShell(argv[0]) && argv[1] == "-c" {
		script := strings.TrimSpace(argv[2])
		if rest, ok := strings.CutPrefix(script, "exec "); ok {
			argv = strings.Fields(rest)
		} else {
			c.add(Error, "command: [baton, run, ...] (or exec baton in the script)",
				"%s -c runs baton as a child of the shell, which is PID 1 and neither passes SIGTERM on nor reaps: baton never drains and is SIGKILLed when the grace period ends", path.Base(argv[0]))
			argv = strings.Fields(script)
		}
	}
	for i := 0; i+1 < len(argv); i++ {
		if path.Base(argv[i]) == "baton" && argv[i+1] == "run" {
			return argv[i+2:], true
		}
	}
	c.add(Error, "", "no \"baton run\" in the container's command %q and args %q", ctr.Command, ctr.Args)
	return nil, false
}

func isShell(p string) bool {
	switch path.Base(p) {
	case "sh", "bash", "dash", "ash", "zsh", "busybox":
		return true
	}
	return false
}

// resolve is the config baton would run with in the container: its
// arguments, its environment (literal values; valueFrom cannot be known
// here), and the config file.
func resolve(ctr Container, args []string, w Workload, m *Manifests, o Options) (*config.Config, error) {
	fs := pflag.NewFlagSet("baton run", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flags := o.Bind(fs)
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("container arguments: %w", err)
	}
	env := map[string]string{}
	for _, e := range ctr.Env {
		if len(e.ValueFrom) == 0 {
			env[e.Name] = e.Value
		}
	}
	if err := flags.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		return nil, err
	}
	inContainer := flags.ConfigPath()
	switch {
	case o.ConfigFile != "":
		if err := fs.Set("config", o.ConfigFile); err != nil {
			return nil, err
		}
	case inContainer != "":
		name, data, ok := fromConfigMap(inContainer, ctr, w, m)
		if !ok {
			return nil, fmt.Errorf("the config file %s is in the image or in a volume that is no ConfigMap of these manifests: pass the file with -c", inContainer)
		}
		if err := fs.Set("config", name); err != nil {
			return nil, err
		}
		flags.ReadFile = func(n string) ([]byte, error) {
			if n == name {
				return data, nil
			}
			return os.ReadFile(n)
		}
	}
	return flags.Resolve(fs.Args())
}

// fromConfigMap finds the ConfigMap key mounted at file in the container;
// name is how errors call it, configmap/NAME/KEY.
func fromConfigMap(file string, ctr Container, w Workload, m *Manifests) (name string, data []byte, ok bool) {
	for _, vm := range ctr.VolumeMounts {
		var rel string
		switch {
		case vm.SubPath != "" && vm.MountPath == file:
			rel = vm.SubPath
		case vm.SubPath == "" && strings.HasPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/"):
			rel = strings.TrimPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/")
		default:
			continue
		}
		for _, v := range w.Pod.Volumes {
			if v.Name != vm.Name || v.ConfigMap == nil {
				continue
			}
			key := rel
			if len(v.ConfigMap.Items) > 0 {
				key = ""
				for _, it := range v.ConfigMap.Items {
					if it.Path == rel {
						key = it.Key
					}
				}
			}
			if s, found := m.ConfigMaps[v.ConfigMap.Name][key]; found && key != "" {
				return "configmap/" + v.ConfigMap.Name + "/" + key, []byte(s), true
			}
		}
	}
	return "", nil, false
}

// grace checks that the kubelet waits for the whole stop before its
// SIGKILL: preStop, then SIGTERM, drain-delay, graceful-timeout, margin.
func (c *checker) grace(w Workload, ctr Container, cfg *config.Config) {
	grace := DefaultGracePeriod
	if p := w.Pod.TerminationGracePeriodSeconds; p != nil {
		grace = time.Duration(*p) * time.Second
	}
	preStop, what := preStopSleep(ctr)
	if cfg.GracefulTimeout == config.Infinity {
		c.add(Error, "graceful-timeout = \"20s\" (any finite value that fits the grace period)",
			"graceful-timeout is infinity: no terminationGracePeriodSeconds is long enough, and the kubelet SIGKILLs whatever is still draining when it ends")
		return
	}
	need := preStop + cfg.DrainDelay + cfg.GracefulTimeout + Margin
	if grace < need {
		parts := []string{}
		if preStop > 0 {
			parts = append(parts, "the preStop "+what+" "+preStop.String())
		}
		parts = append(parts, "drain-delay "+cfg.DrainDelay.String(), "graceful-timeout "+cfg.GracefulTimeout.String(), Margin.String()+" for baton itself")
		c.add(Error, fmt.Sprintf("terminationGracePeriodSeconds: %d", int64((need+time.Second-1)/time.Second)),
			"terminationGracePeriodSeconds is %d, shorter than %s = %s: the kubelet SIGKILLs baton and its workers mid-drain",
			int64(grace/time.Second), strings.Join(parts, " + "), need)
	}
	if preStop > 0 && cfg.DrainDelay > 0 {
		c.add(Warning, "drain-delay = \"0s\", or remove lifecycle.preStop",
			"the preStop %s (%s) and drain-delay (%s) both wait for the endpoint removal to reach every load balancer: the stop waits %s before any worker drains; keep one (drain-delay turns /readyz 503 at once and needs no sleep in the image)",
			what, preStop, cfg.DrainDelay, preStop+cfg.DrainDelay)
	}
}

// preStopSleep is how long the container's preStop hook sleeps: the sleep
// action, or an exec of sleep N.
func preStopSleep(ctr Container) (time.Duration, string) {
	if ctr.Lifecycle == nil || ctr.Lifecycle.PreStop == nil {
		return 0, ""
	}
	h := ctr.Lifecycle.PreStop
	if h.Sleep != nil {
		return time.Duration(h.Sleep.Seconds) * time.Second, "sleep action"
	}
	if h.Exec == nil {
		return 0, ""
	}
	argv := h.Exec.Command
	if len(argv) > 2 && isShell(argv[0]) && argv[1] == "-c" {
		argv = strings.Fields(argv[2])
	}
	if len(argv) == 2 && path.Base(argv[0]) == "sleep" {
		if s, err := strconv.ParseFloat(strings.TrimSuffix(argv[1], "s"), 64); err == nil && s > 0 {
			return time.Duration(s * float64(time.Second)), "exec sleep"
		}
	}
	return 0, ""
}

// probes checks that each probe asks baton what it means to ask.
func (c *checker) probes(ctr Container, cfg *config.Config) {
	named := map[string]int{}
	for _, p := range ctr.Ports {
		if p.Name != "" {
			named[p.Name] = int(p.ContainerPort)
		}
	}
	byPort := map[int]config.Socket{}
	var metrics *config.Socket
	for _, s := range cfg.Sockets {
		if s.Address.Network == "tcp" {
			if ap, err := netip.ParseAddrPort(s.Address.Addr); err == nil {
				byPort[int(ap.Port())] = s
			}
		}
		if s.Name == cfg.MetricsSocket {
			metrics = &s
		}
	}
	probeFix := "httpGet: {path: /readyz, port: N} with N the metrics socket's port"
	if metrics != nil {
		if ap, err := netip.ParseAddrPort(metrics.Address.Addr); err == nil {
			probeFix = fmt.Sprintf("httpGet: {path: PATH, port: %d}", ap.Port())
		}
	}
	loopbackNoted := false
	for _, p := range []struct {
		kind  string
		probe *Probe
		path  string // what it should ask
	}{
		{"livenessProbe", ctr.LivenessProbe, health.LivePath},
		{"readinessProbe", ctr.ReadinessProbe, health.ReadyPath},
		{"startupProbe", ctr.StartupProbe, ""},
	} {
		fix := strings.Replace(probeFix, "PATH", p.path, 1)
		if p.probe == nil {
			switch p.kind {
			case "readinessProbe":
				c.add(Warning, "readinessProbe."+fix, "no readinessProbe: the pod takes traffic as soon as baton starts, before any worker is ready, and keeps it while baton drains")
			case "livenessProbe":
				c.add(Warning, "livenessProbe."+fix, "no livenessProbe: a stuck baton is never restarted")
			}
			continue
		}
		var port IntOrString
		switch {
		case p.probe.HTTPGet != nil:
			port = p.probe.HTTPGet.Port
		case p.probe.TCPSocket != nil:
			port = p.probe.TCPSocket.Port
		default:
			continue // exec and grpc: nothing of baton's to compare
		}
		n := int(port.Int)
		if port.Str != "" {
			var ok bool
			if n, ok = named[port.Str]; !ok {
				c.add(Error, "", "%s: port %s is not a named port of the container", p.kind, port)
				continue
			}
		}
		sock, listens := byPort[n]
		switch {
		case metrics == nil:
			c.add(Error, "metrics-socket = \"metrics\" with [sockets.metrics] listen = \"tcp://0.0.0.0:9100\"",
				"%s on port %d, but baton serves no probes: it has no metrics-socket", p.kind, n)
			continue
		case !listens:
			c.add(Error, p.kind+"."+fix, "%s: nothing of baton's listens on port %d (%s)", p.kind, n, socketList(cfg))
			continue
		case sock.Name != metrics.Name:
			c.add(Warning, p.kind+"."+fix, "%s asks a worker (socket %s on port %d), not baton: it does not turn unready while baton drains or boots, and one worker's hiccup counts for the whole pod", p.kind, sock.Name, n)
			continue
		}
		if ap, err := netip.ParseAddrPort(sock.Address.Addr); err == nil && ap.Addr().IsLoopback() && !loopbackNoted {
			loopbackNoted = true
			c.add(Error, fmt.Sprintf("[sockets.%s] listen = \"tcp://0.0.0.0:%d\"", sock.Name, n),
				"%s: socket %s listens on %s, but the kubelet connects to the pod's IP", p.kind, sock.Name, sock.Address)
		}
		if p.probe.TCPSocket != nil {
			c.add(Warning, p.kind+"."+fix, "%s only checks that port %d accepts connections, which the kernel does even while baton is stuck or draining", p.kind, n)
			continue
		}
		g := p.probe.HTTPGet
		if strings.EqualFold(g.Scheme, "HTTPS") {
			c.add(Error, p.kind+".httpGet.scheme: HTTP", "%s uses HTTPS; baton serves plain HTTP", p.kind)
		}
		asked, _, _ := strings.Cut(g.Path, "?")
		switch {
		case asked != health.LivePath && asked != health.ReadyPath && asked != "/metrics":
			c.add(Error, p.kind+"."+fix, "%s asks %q, which baton does not serve (it serves %s, %s and /metrics)", p.kind, g.Path, health.LivePath, health.ReadyPath)
		case p.kind == "livenessProbe" && asked == health.ReadyPath:
			c.add(Error, p.kind+".httpGet.path: "+health.LivePath, "livenessProbe asks %s: the kubelet restarts baton whenever it is not ready, while workers boot or crash-loop and while it drains", asked)
		case p.kind == "readinessProbe" && asked == health.LivePath:
			c.add(Warning, p.kind+".httpGet.path: "+health.ReadyPath, "readinessProbe asks %s, which stays 200 while baton drains and before any worker is ready", asked)
		case asked == "/metrics":
			c.add(Warning, p.kind+"."+fix, "%s asks /metrics: a full scrape per probe, and it says nothing about readiness", p.kind)
		}
	}
}

// sockets flags worker sockets no one outside the pod can reach.
func (c *checker) sockets(cfg *config.Config) {
	for _, s := range cfg.Sockets {
		if s.Name == cfg.MetricsSocket || s.Address.Network != "tcp" {
			continue
		}
		if ap, err := netip.ParseAddrPort(s.Address.Addr); err == nil && ap.Addr().IsLoopback() {
			c.add(Warning, fmt.Sprintf("[sockets.%s] listen = \"tcp://0.0.0.0:%d\"", s.Name, ap.Port()),
				"socket %s listens on %s: no Service or other pod can reach it", s.Name, s.Address)
		}
	}
}

func socketList(cfg *config.Config) string {
	if len(cfg.Sockets) == 0 {
		return "it has no sockets"
	}
	var l []string
	for _, s := range cfg.Sockets {
		l = append(l, s.Name+" on "+s.Address.String())
	}
	return "its sockets: " + strings.Join(l, ", ")
}
