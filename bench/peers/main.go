package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/batonhq/baton/bench/host"
	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/internal/systemdtest"
)

//go:embed apps
var apps embed.FS

type options struct {
	duration  time.Duration
	events    int
	clients   int
	workers   int
	systems   []string
	triggers  []trigger
	keepAlive []bool
	csvDir    string
	// want, when set, picks the rows to run among the chosen systems and
	// triggers.
	want func(*system, trigger) bool
	// log, when set, gets a line per row as it finishes.
	log func(string)
}

func main() {
	o := options{workers: 4}
	var sys, trig, ka string
	flag.DurationVar(&o.duration, "duration", 12*time.Second, "length of each row's run")
	flag.IntVar(&o.events, "events", 2, "triggers per row (a reload into a broken app is fired once)")
	flag.IntVar(&o.clients, "clients", 8, "concurrent clients")
	flag.StringVar(&sys, "systems", "", "comma-separated systems (default all): "+strings.Join(systemIDs(), ","))
	flag.StringVar(&trig, "triggers", "", "comma-separated triggers (default all): "+joinTriggers(triggers))
	flag.StringVar(&ka, "keepalive", "on,off", "keep-alive settings to run: on, off or both")
	flag.StringVar(&o.csvDir, "csv", "", "directory to write each row's requests (a CSV) and its server's log to")
	flag.Parse()
	var err error
	if o.systems, o.triggers, o.keepAlive, err = parseSelection(sys, trig, ka); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(2)
	}
	if o.csvDir != "" {
		if err := os.MkdirAll(o.csvDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "peers:", err)
			os.Exit(1)
		}
	}
	o.log = func(s string) { fmt.Fprintln(os.Stderr, s) }
	res, err := run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
	report(os.Stdout, o, res)
}

func systemIDs() []string {
	var ids []string
	for _, s := range systems() {
		ids = append(ids, s.id)
	}
	return ids
}

func joinTriggers(ts []trigger) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ",")
}

func parseSelection(sys, trig, ka string) ([]string, []trigger, []bool, error) {
	var ids []string
	known := map[string]bool{}
	for _, id := range systemIDs() {
		known[id] = true
	}
	for _, s := range splitList(sys) {
		if !known[s] {
			return nil, nil, nil, fmt.Errorf("-systems: unknown system %q (want %s)", s, strings.Join(systemIDs(), ", "))
		}
		ids = append(ids, s)
	}
	var ts []trigger
	for _, s := range splitList(trig) {
		found := false
		for _, t := range triggers {
			found = found || string(t) == s
		}
		if !found {
			return nil, nil, nil, fmt.Errorf("-triggers: unknown trigger %q (want %s)", s, joinTriggers(triggers))
		}
		ts = append(ts, trigger(s))
	}
	if len(ts) == 0 {
		ts = triggers
	}
	var kas []bool
	for _, s := range splitList(ka) {
		switch s {
		case "on":
			kas = append(kas, true)
		case "off":
			kas = append(kas, false)
		default:
			return nil, nil, nil, fmt.Errorf("-keepalive: %q: want on or off", s)
		}
	}
	if len(kas) == 0 {
		return nil, nil, nil, errors.New("-keepalive: want on, off or on,off")
	}
	return ids, ts, kas, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// env is what every row shares: one user manager, the apps, the builds.
type env struct {
	ctx      context.Context
	mgr      *systemdtest.Manager
	opts     options
	dir      string
	appDir   string
	modeFile string
	// baton is the binary the units run; batonV1 and batonV2 are two
	// builds that an upgrade renames over it in turn.
	baton, batonV1, batonV2 string
	upgrades                int
	units                   int
}

// results are the rows and the machine they ran on.
type results struct {
	host string
	rows []row
}

func run(ctx context.Context, o options) (*results, error) {
	all := systems()
	var chosen []*system
	for _, s := range all {
		if len(o.systems) > 0 && !contains(o.systems, s.id) {
			continue
		}
		for _, t := range o.triggers {
			if s.how(t) != "" && (o.want == nil || o.want(s, t)) {
				chosen = append(chosen, s)
				break
			}
		}
	}
	if err := installPeers(chosen); err != nil {
		return nil, err
	}
	res := &results{}
	var err error
	if res.host, err = prepareHost(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "baton-peers-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	e := &env{ctx: ctx, opts: o, dir: dir, appDir: filepath.Join(dir, "app"), modeFile: filepath.Join(dir, "mode")}
	if err := e.prepare(); err != nil {
		return nil, err
	}
	mgr, err := systemdtest.Start(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer mgr.Stop()
	e.mgr = mgr

	for _, t := range o.triggers {
		for _, s := range chosen {
			if s.how(t) == "" || (o.want != nil && !o.want(s, t)) {
				continue
			}
			for _, ka := range o.keepAlive {
				r := e.row(s, t, ka)
				if o.log != nil {
					o.log(r.line())
				}
				res.rows = append(res.rows, r)
			}
		}
	}
	return res, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// prepare builds baton (twice, for upgrades) and the example, and writes
// the apps.
func (e *env) prepare() error {
	bin := filepath.Join(e.dir, "bin")
	if err := os.MkdirAll(e.appDir, 0o755); err != nil {
		return err
	}
	if err := load.Build(bin, map[string][]string{
		"baton-v1": {"./cmd/baton"},
		"baton-v2": {"-ldflags", "-X main.version=bench-2", "./cmd/baton"},
	}); err != nil {
		return err
	}
	if err := load.Build(e.appDir, map[string][]string{"hello": {"./examples/hello"}}); err != nil {
		return err
	}
	e.batonV1, e.batonV2, e.baton = filepath.Join(bin, "baton-v1"), filepath.Join(bin, "baton-v2"), filepath.Join(bin, "baton")
	b, err := os.ReadFile(e.batonV1)
	if err != nil {
		return err
	}
	if err := os.WriteFile(e.baton, b, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"app.py", "config.ru", "hello-mode.sh"} {
		b, err := apps.ReadFile("apps/" + name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(e.appDir, name), b, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(e.modeFile, []byte("fast\n"), 0o644)
}

// installPeers installs the Debian packages the chosen systems need, only
// those missing, never upgrading what is installed.
func installPeers(chosen []*system) error {
	var missing []string
	for _, s := range chosen {
		for _, p := range s.packages {
			out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", p).Output()
			if !strings.HasSuffix(string(out), " installed") && !contains(missing, p) {
				missing = append(missing, p)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if b, err := exec.Command("apt-get", "update", "-q").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %v: %s", err, b)
	}
	cmd := exec.Command("apt-get", append([]string{"install", "-y", "-q", "--no-install-recommends", "--no-upgrade"}, missing...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install %s: %v: %s", strings.Join(missing, " "), err, b)
	}
	return nil
}

// prepareHost gives the machine systemd's settings (bench/host) and
// describes it for the report.
func prepareHost() (string, error) {
	note, err := host.Prepare()
	if err != nil {
		return "", err
	}
	d := host.Describe()
	if note != "" {
		d += " (" + note + ")"
	}
	return d, nil
}
