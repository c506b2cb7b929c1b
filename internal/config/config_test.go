package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "app.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const good = `# a full config
command = ["/usr/bin/app", "--port-from-fd"]
workers = 4
readiness = "exec"
min-ready = 3
boot-timeout = "10s"
graceful-timeout = "1m"

[sockets.web]
listen = "tcp://127.0.0.1:8080"
backlog = 128

[sockets.admin]
listen = "unix:///run/app/admin.sock"
mode = "0600"

[sockets.metrics]
listen = "tcp://[::1]:9100"
`

func TestLoadGood(t *testing.T) {
	c, err := Load(writeFile(t, good))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	if c.Workers != 4 || c.MinReady != 3 || c.Readiness != ReadinessExec || c.BootTimeout != 10*time.Second || c.GracefulTimeout != time.Minute {
		t.Errorf("settings: %+v", c)
	}
	var names []string
	for _, s := range c.Sockets {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "web,admin,metrics" {
		t.Errorf("socket order %s, want declaration order web,admin,metrics", got)
	}
	if c.Sockets[0].Backlog != 128 || c.Sockets[1].Mode != 0o600 || c.Sockets[1].Address.Addr != "/run/app/admin.sock" || c.Sockets[2].Address.Addr != "[::1]:9100" {
		t.Errorf("sockets: %+v", c.Sockets)
	}
	if c.Sockets[2].Backlog != DefaultBacklog {
		t.Errorf("default backlog: %d", c.Sockets[2].Backlog)
	}
}

func TestDefaults(t *testing.T) {
	c := &Config{Command: []string{"app"}}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	if c.WatchdogTimeout != Infinity || c.RequestTimeout != Infinity || c.TimeoutSignal.String() != "SIGABRT" || c.TimeoutGrace != DefaultTimeoutGrace {
		t.Errorf("clock defaults: %+v", c)
	}
	if c.Workers != DefaultWorkers || c.MinReady != c.Workers || c.Readiness != ReadinessNotify || c.BootTimeout != DefaultBootTimeout || c.GracefulTimeout != DefaultGracefulTimeout {
		t.Errorf("defaults: %+v", c)
	}
}

func TestLoadErrorsNameFileLineAndKey(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unknown key", "command = [\"a\"]\nworkerz = 4\n", ":2:1: workerz: unknown key"},
		{"unknown socket key", "[sockets.web]\nlisten = \"127.0.0.1:1\"\nbaklog = 5\n", ":3:1: sockets.web.baklog: unknown key"},
		{"wrong type", "workers = \"four\"\n", ":1:11: workers: want an integer, not a string"},
		{"wrong duration type", "boot-timeout = 30\n", `:1:16: boot-timeout: want a string, not an integer`},
		{"bad duration", "command = [\"a\"]\nboot-timeout = \"3 seconds\"\n", ":2:1: boot-timeout: \"3 seconds\" is not a duration"},
		{"zero duration", "graceful-timeout = \"0s\"\n", ":1:1: graceful-timeout: \"0s\" must be positive"},
		{"negative duration", "boot-timeout = \"-1s\"\n", "boot-timeout: \"-1s\" must be positive"},
		{"zero workers", "command = [\"a\"]\n\nworkers = 0\n", ":3:1: workers: 0: must be at least 1"},
		{"bad readiness", "readiness = \"maybe\"\n", ":1:1: readiness: \"maybe\" is not a readiness"},
		{"bad address", "[sockets.web]\nlisten = \"http://x:1\"\n", ":2:1: sockets.web.listen: address \"http://x:1\": unknown scheme"},
		{"host name", "[sockets.web]\nlisten = \"localhost:80\"\n", "\"localhost\" is not an IP address"},
		{"bad port", "[sockets.web]\nlisten = \"127.0.0.1:99999\"\n", "port \"99999\""},
		{"relative unix", "[sockets.web]\nlisten = \"unix:run/x.sock\"\n", "must be absolute"},
		{"missing listen", "[sockets.web]\nbacklog = 5\n", ":1:2: sockets.web: missing listen"},
		{"mode on tcp", "[sockets.web]\nlisten = \"127.0.0.1:1\"\nmode = \"0600\"\n", "sockets.web: mode, owner and group apply to unix sockets only"},
		{"bad mode", "[sockets.web]\nlisten = \"unix:/x\"\nmode = \"999\"\n", "sockets.web.mode: \"999\" is not a mode"},
		{"integer mode", "[sockets.web]\nlisten = \"unix:/x\"\nmode = 660\n", `:3:8: sockets.web.mode: want a string, not an integer`},
		{"leading zero", "[sockets.web]\nlisten = \"unix:/x\"\nmode = 0660\n", `:3:8: integers cannot have leading zeroes`},
		{"bad socket name", "[sockets.\"a:b\"]\nlisten = \"127.0.0.1:1\"\n", "only printable ASCII"},
		{"syntax", "workers = \n", ":1:11"},
		{"duplicate key", "workers = 1\nworkers = 2\n", ":2:1: workers: key workers is already defined"},
		{"empty command", "command = []\n", ":1:1: command: must name a program"},
		{"bad signal", "command = [\"a\"]\ntimeout-signal = \"SIGFOO\"\n", ":2:1: timeout-signal: \"SIGFOO\" is not a signal"},
		{"zero watchdog", "watchdog-timeout = \"0s\"\n", ":1:1: watchdog-timeout: \"0s\" must be positive (use \"infinity\" to turn the clock off)"},
		{"negative request", "request-timeout = \"-2s\"\n", "request-timeout: \"-2s\" must be positive"},
		{"zero grace", "timeout-grace = \"0ms\"\n", "timeout-grace: \"0ms\" must be positive"},
		{"bad size", "max-memory = \"lots\"\n", `:1:1: max-memory: "lots" is not a size`},
		{"zero size", "max-memory = \"0MiB\"\n", `max-memory: "0MiB" is not a size`},
		{"bad lifetime", "max-lifetime = \"forever\"\n", `:1:1: max-lifetime: "forever" is not a duration`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, tc.body)
			_, err := Load(p)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), p) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to start with the file and contain %q", err, tc.want)
			}
		})
	}
}

func TestFinishCrossFieldErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"command = [\"a\"]\nworkers = 2\nmin-ready = 3\n", ":3:1: min-ready: 3 is more than the 2 workers"},
		{"workers = 2\n", "command: no worker command"},
		{"command = [\"a\"]\ngraceful-timeout = \"2s\"\ntimeout-grace = \"5s\"\n", ":3:1: timeout-grace: 5s is longer than graceful-timeout 2s"},
		{"command = [\"a\"]\ntimeout-grace = \"infinity\"\n", ":2:1: timeout-grace: infinity would let a hung worker live forever"},
		{"command = [\"a\"]\ntimeout-signal = \"KILL\"\n", ":2:1: timeout-signal: SIGKILL leaves nothing to diagnose"},
		{"command=[\"a\"]\n[sockets.a]\nlisten = \"127.0.0.1:1\"\n[sockets.b]\nlisten = \"127.0.0.1:1\"\n", ":4:2: sockets.b: address tcp://127.0.0.1:1 is already used at"},
	} {
		p := writeFile(t, tc.body)
		c, err := Load(p)
		if err == nil {
			err = c.Finish()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: error %v, want it to name %s and contain %q", tc.body, err, p, tc.want)
		}
	}
}

func resolve(t *testing.T, args []string, cmd ...string) (*Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	f := BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return f.Resolve(cmd)
}

func TestFlagsOverrideFile(t *testing.T) {
	p := writeFile(t, good)
	c, err := resolve(t, []string{"-c", p, "-w", "6", "--boot-timeout", "infinity", "--watchdog-timeout", "2s", "--timeout-signal", "quit", "-b", "web=tcp://0.0.0.0:9000", "-b", "extra=unix:///tmp/x.sock"}, "/bin/other", "arg")
	if err != nil {
		t.Fatal(err)
	}
	if c.WatchdogTimeout != 2*time.Second || c.TimeoutSignal.String() != "SIGQUIT" {
		t.Errorf("clock flags: %+v", c)
	}
	if c.Workers != 6 || c.BootTimeout != Infinity || c.GracefulTimeout != time.Minute || c.Command[0] != "/bin/other" {
		t.Errorf("merged: %+v", c)
	}
	if c.Sockets[0].Name != "web" || c.Sockets[0].Address.Addr != "0.0.0.0:9000" || c.Sockets[0].Backlog != 128 {
		t.Errorf("web overridden in place keeping its backlog: %+v", c.Sockets[0])
	}
	if last := c.Sockets[len(c.Sockets)-1]; last.Name != "extra" || last.Address.Network != "unix" {
		t.Errorf("extra socket appended: %+v", last)
	}
}

func TestUnnamedBinds(t *testing.T) {
	c, err := resolve(t, []string{"-b", "127.0.0.1:8000", "-b", "[::1]:8000"}, "app")
	if err != nil {
		t.Fatal(err)
	}
	if c.Sockets[0].Name != "web" || c.Sockets[1].Name != "web-2" || c.Sockets[1].Address.Addr != "[::1]:8000" {
		t.Errorf("sockets %+v", c.Sockets)
	}
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-w", "0"}, "--workers: \"0\": must be at least 1"},
		{[]string{"-w", "many"}, "invalid argument \"many\" for \"-w, --workers\""},
		{[]string{"--boot-timeout", "soon"}, "--boot-timeout: \"soon\" is not a duration"},
		{[]string{"--graceful-timeout", "0"}, "--graceful-timeout: \"0\" must be positive"},
		{[]string{"--readiness", "ping"}, "--readiness: \"ping\" is not a readiness"},
		{[]string{"-b", "web=ftp://x"}, "--bind: \"web=ftp://x\": address \"ftp://x\": unknown scheme"},
		{[]string{"-b", "bad name=127.0.0.1:1"}, "only printable ASCII"},
		{[]string{"--min-ready", "0"}, "--min-ready"},
		{[]string{"--watchdog-timeout", "0"}, "--watchdog-timeout: \"0\" must be positive"},
		{[]string{"--timeout-signal", "NOPE"}, "--timeout-signal: \"NOPE\" is not a signal"},
		{[]string{"--timeout-grace", "1m", "--graceful-timeout", "10s"}, "timeout-grace: 1m0s is longer than graceful-timeout 10s"},
		{[]string{"-c", "/nonexistent/baton.toml"}, "/nonexistent/baton.toml: read config"},
		{[]string{"--frobnicate"}, "unknown flag: --frobnicate"},
	} {
		_, err := resolve(t, tc.args, "app")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"512MiB": 512 << 20, "2G": 2 << 30, "100": 100, "64 KiB": 64 << 10, "1M": 1 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1M", "1.5G", "M", "12X"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestWorkerControl(t *testing.T) {
	c, err := resolve(t, nil, "app")
	if err != nil || c.WorkerControl {
		t.Fatalf("default: %v %v, want false", c.WorkerControl, err)
	}
	p := writeFile(t, "command = [\"a\"]\nworker-control = true\n")
	if c, err := resolve(t, []string{"-c", p}); err != nil || !c.WorkerControl {
		t.Errorf("from the file: %v %v", c.WorkerControl, err)
	}
	if c, err := resolve(t, []string{"-c", p, "--worker-control=false"}); err != nil || c.WorkerControl {
		t.Errorf("the flag overrides the file: %v %v", c.WorkerControl, err)
	}
	if c, err := resolve(t, []string{"--worker-control"}, "app"); err != nil || !c.WorkerControl {
		t.Errorf("flag: %v %v", c.WorkerControl, err)
	}
	p = writeFile(t, "command = [\"a\"]\n\nworker-control = \"yes\"\n")
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p+":3:18: worker-control: want true or false, not a string") {
		t.Errorf("a string: %v", err)
	}
}
