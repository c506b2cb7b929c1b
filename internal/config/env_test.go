package config

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// resolveEnv parses args, applies env and resolves, as baton run does.
func resolveEnv(t *testing.T, args []string, env map[string]string, cmd ...string) (*Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	f := BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := f.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		return nil, err
	}
	return f.Resolve(cmd)
}

func TestEnvNamesComeFromFlagNames(t *testing.T) {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	f := BindFlags(fs)
	fs.String("log-format", "auto", "")
	fs.BoolP("help", "h", false, "")
	names := f.EnvNames()
	var want []string
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Name != "help" {
			want = append(want, fl.Name)
		}
	})
	if len(names) != len(want) {
		t.Fatalf("%d variables for %d flags: %v", len(names), len(want), names)
	}
	for _, n := range []string{"BATON_WORKERS", "BATON_BOOT_TIMEOUT", "BATON_BIND", "BATON_CONFIG", "BATON_METRICS_SOCKET", "BATON_LOG_FORMAT", "BATON_MAX_MEMORY"} {
		if !slices.Contains(names, n) {
			t.Errorf("no %s in %v", n, names)
		}
	}
	// What baton sets for its workers or itself must never read as a
	// setting: a worker that runs baton would otherwise take its slot
	// number for a setting.
	for _, reserved := range []string{"BATON_WORKER", "BATON_GENERATION", "BATON_SHIM_EXEC_FD", "BATON_UPGRADE_STATE"} {
		if slices.Contains(names, reserved) {
			t.Errorf("flag variable %s collides with a variable baton sets", reserved)
		}
	}
	if got := f.EnvNames("log-format"); slices.Contains(got, "BATON_LOG_FORMAT") || len(got) != len(names)-1 {
		t.Errorf("except: %v", got)
	}
}

func TestEnvBetweenFlagsAndFile(t *testing.T) {
	p := writeFile(t, good) // workers 4, boot-timeout 10s, graceful-timeout 1m, min-ready 3
	env := map[string]string{
		"BATON_CONFIG":           p,
		"BATON_WORKERS":          "8",
		"BATON_BOOT_TIMEOUT":     "20s",
		"BATON_GRACEFUL_TIMEOUT": "2m",
		"BATON_MAX_MEMORY":       "1GiB",
		"BATON_SURGE":            "", // empty: as if unset
		"BATON_BIND":             " web=tcp://0.0.0.0:9000 , extra=unix:///tmp/x.sock,",
	}
	c, err := resolveEnv(t, []string{"--graceful-timeout", "90s"}, env, "/bin/app")
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != p {
		t.Errorf("config file from BATON_CONFIG: %q", c.Path)
	}
	// environment over file
	if c.Workers != 8 || c.BootTimeout != 20*time.Second || c.MaxMemory != 1<<30 {
		t.Errorf("env over file: workers %d boot %s memory %d", c.Workers, c.BootTimeout, c.MaxMemory)
	}
	// flags over environment
	if c.GracefulTimeout != 90*time.Second {
		t.Errorf("flag over env: graceful %s", c.GracefulTimeout)
	}
	// file where neither says anything
	if c.MinReady != 3 || c.Readiness != ReadinessExec || c.Surge != 1 {
		t.Errorf("file values: %+v", c)
	}
	// a list: the file's web moved, keeping its backlog; extra appended
	if c.Sockets[0].Name != "web" || c.Sockets[0].Address.Addr != "0.0.0.0:9000" || c.Sockets[0].Backlog != 128 {
		t.Errorf("web: %+v", c.Sockets[0])
	}
	if last := c.Sockets[len(c.Sockets)-1]; last.Name != "extra" || last.Address.Addr != "/tmp/x.sock" {
		t.Errorf("extra: %+v", last)
	}
}

func TestCommandLineBindsReplaceTheVariable(t *testing.T) {
	c, err := resolveEnv(t, []string{"-b", "127.0.0.1:7000"}, map[string]string{"BATON_BIND": "127.0.0.1:8000,127.0.0.1:8001"}, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sockets) != 1 || c.Sockets[0].Address.Addr != "127.0.0.1:7000" {
		t.Errorf("sockets %+v: the command line's --bind replaces BATON_BIND whole", c.Sockets)
	}
}

func TestEnvErrorsNameTheVariable(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"BATON_WORKERS": "x"}, `BATON_WORKERS: "x" is not a number`},
		{map[string]string{"BATON_WORKERS": "0"}, `BATON_WORKERS: "0": must be at least 1`},
		{map[string]string{"BATON_BOOT_TIMEOUT": "soon"}, `BATON_BOOT_TIMEOUT: "soon" is not a duration`},
		{map[string]string{"BATON_READINESS": "ping"}, `BATON_READINESS: "ping" is not a readiness`},
		{map[string]string{"BATON_BIND": "web=tcp://127.0.0.1:1,web=ftp://x"}, `BATON_BIND: "web=ftp://x": address "ftp://x": unknown scheme`},
		{map[string]string{"BATON_TIMEOUT_SIGNAL": "NOPE"}, `BATON_TIMEOUT_SIGNAL: "NOPE" is not a signal`},
		{map[string]string{"BATON_MAX_MEMORY": "lots"}, `BATON_MAX_MEMORY: "lots" is not a size`},
		// Cross-field errors name the variable too.
		{map[string]string{"BATON_WORKERS": "2", "BATON_MIN_READY": "3"}, `BATON_MIN_READY: 3 is more than the 2 workers`},
		{map[string]string{"BATON_GRACEFUL_TIMEOUT": "10s", "BATON_TIMEOUT_GRACE": "1m"}, `BATON_TIMEOUT_GRACE: 1m0s is longer than graceful-timeout 10s`},
		{map[string]string{"BATON_BIND": "127.0.0.1:1,a=127.0.0.1:1"}, `BATON_BIND a=127.0.0.1:1: address tcp://127.0.0.1:1 is already used at BATON_BIND 127.0.0.1:1`},
		{map[string]string{"BATON_CONFIG": "/nonexistent/baton.toml"}, "/nonexistent/baton.toml: read config"},
	} {
		_, err := resolveEnv(t, nil, tc.env, "app")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.env, err, tc.want)
		}
	}
	// The same value on the command line is named as the flag.
	if _, err := resolveEnv(t, []string{"--min-ready", "3", "-w", "2"}, nil, "app"); err == nil || !strings.Contains(err.Error(), "--min-ready: 3 is more than the 2 workers") {
		t.Errorf("flag: %v", err)
	}
}

func TestWithoutEnvKeepsWhatIsNotASetting(t *testing.T) {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	f := BindFlags(fs)
	got := f.WithoutEnv([]string{"PATH=/bin", "BATON_WORKERS=4", "BATON_BIND=127.0.0.1:1", "BATON_WORKER=1", "BATON_APP_MODE=x", "HOME=/root", "BATON_CONFIG"})
	want := []string{"PATH=/bin", "BATON_WORKER=1", "BATON_APP_MODE=x", "HOME=/root"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
