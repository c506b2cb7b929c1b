package config

import (
	"errors"
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
		{"bad size", "max-memory = \"lots\"\n", `:1:1: max-memory: "lots" is not a size (want a number and a unit, such as "512M", "1.5G" or "512MiB")`},
		{"zero size", "max-memory = \"0MiB\"\n", `max-memory: "0MiB" is zero`},
		{"bad lifetime", "max-lifetime = \"forever\"\n", `:1:1: max-lifetime: "forever" is not a duration`},
		{"bad memory-max", "command = [\"a\"]\nmemory-max = \"lots\"\n", `:2:1: memory-max: "lots" is not a size`},
		{"integer memory-max", "memory-max = 512\n", `:1:14: memory-max: want a string, not an integer`},
		{"zero cpu-weight", "cpu-weight = 0\n", `:1:1: cpu-weight: 0: want 1 to 10000`},
		{"big cpu-weight", "command = [\"a\"]\ncpu-weight = 10001\n", `:2:1: cpu-weight: 10001: want 1 to 10000`},
		{"string cpu-weight", "cpu-weight = \"100\"\n", `:1:14: cpu-weight: want an integer, not a string`},
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
		{"command = [\"a\"]\nmemory-max = \"512MiB\"\nmax-memory = \"1G\"\n", ":3:1: max-memory: 1GiB is above memory-max 512MiB: the kernel would OOM-kill inside a worker before baton recycles it"},
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

func TestLimits(t *testing.T) {
	c, err := Load(writeFile(t, "command = [\"a\"]\nmemory-max = \"1GiB\"\ncpu-weight = 200\nmax-memory = \"768MiB\"\n"))
	if err == nil {
		err = c.Finish()
	}
	if err != nil || c.MemoryMax != 1<<30 || c.CPUWeight != 200 || c.MaxMemory != 768<<20 {
		t.Errorf("file: %+v, %v", c, err)
	}
	c, err = resolve(t, []string{"--memory-max", "256M", "--cpu-weight", "10000"}, "app")
	if err != nil || c.MemoryMax != 256<<20 || c.CPUWeight != 10000 {
		t.Errorf("flags: %+v, %v", c, err)
	}
	// Zero values: no limit, the kernel's default weight.
	c = &Config{Command: []string{"app"}}
	if err := c.Finish(); err != nil || c.MemoryMax != 0 || c.CPUWeight != 0 {
		t.Errorf("defaults: %+v, %v", c, err)
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
		{[]string{"--memory-max", "lots"}, `--memory-max: "lots" is not a size`},
		{[]string{"--cpu-weight", "0"}, "--cpu-weight: 0: want 1 to 10000"},
		{[]string{"--cpu-weight", "20000"}, "--cpu-weight: 20000: want 1 to 10000"},
		{[]string{"--max-memory", "2G", "--memory-max", "1G"}, "max-memory: 2GiB is above memory-max 1GiB"},
		{[]string{"--frobnicate"}, "unknown flag: --frobnicate"},
	} {
		_, err := resolve(t, tc.args, "app")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		// K, M, G, T and every spelling of them are powers of 1024.
		{"512M", 512 << 20},
		{"512MB", 512 << 20},
		{"512MiB", 512 << 20},
		{"512m", 512 << 20},
		{"512mb", 512 << 20},
		{"512 MiB", 512 << 20},
		{" 2G ", 2 << 30},
		{"2GB", 2 << 30},
		{"2gib", 2 << 30},
		{"1024K", 1 << 20},
		{"1024KB", 1 << 20},
		{"1024kB", 1 << 20},
		{"1T", 1 << 40},
		{"1TiB", 1 << 40},
		// Fractions with a unit, rounded down to whole bytes.
		{"1.5G", 3 << 29},
		{"1.5GB", 3 << 29},
		{"0.5G", 512 << 20},
		{"1.1M", 1153433}, // 1.1 * 1048576 = 1153433.6
		// Bytes.
		{"1048576", 1 << 20},
		{"1048576B", 1 << 20},
		{"2000000b", 2000000},
		// No limit.
		{"infinity", 0},
	} {
		if got, err := ParseSize(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"", `"" is empty`},
		{"   ", `is empty`},
		{"lots", `"lots" is not a size`},
		{"M", `"M" is not a size`},
		{"-1M", `"-1M" is negative`},
		{"0", `"0" is zero`},
		{"0M", `"0M" is zero`},
		{"0.0G", `"0.0G" is zero`},
		{"12X", `unknown unit "X" (want K, M, G or T, also written KB, KiB, MB, MiB, ...; all powers of 1024)`},
		{"12Mi", `unknown unit "Mi"`},
		{"5%", `a share of RAM is not a size baton takes`},
		{"1e9", `unknown unit "e9"`},
		{"1.5", `"1.5": a fraction of a byte`},
		{"1.5.2G", `"1.5.2G" is not a size`},
		{".5G", `".5G" is not a size`},
		{"5.G", `"5.G" is not a size`},
		{"1G512M", `unknown unit "G512M"`},
		{"512", `"512" is 512 bytes, less than any worker needs (a bare number is bytes: did you mean "512M"?)`},
		{"512K", `"512K" is less than 1M`},
		{"99999999T", `"99999999T" is too large`},
		{"99999999999999999999999", `is too large`},
		{"Infinity", `"Infinity" is not a size`},
	} {
		_, err := ParseSize(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSize(%q): error %v, want %q", tc.in, err, tc.want)
		}
	}
}

// max-memory in the file and on the command line take the same sizes, and
// the flag overrides the file, "infinity" included.
func TestMaxMemoryFileAndFlag(t *testing.T) {
	p := writeFile(t, "command = [\"a\"]\nmax-memory = \"1.5GB\"\n")
	c, err := resolve(t, []string{"-c", p})
	if err != nil || c.MaxMemory != 3<<29 {
		t.Fatalf("file: %d, %v", c.MaxMemory, err)
	}
	if c, err = resolve(t, []string{"-c", p, "--max-memory", "512MB"}); err != nil || c.MaxMemory != 512<<20 {
		t.Errorf("flag: %v, %v", c, err)
	}
	if c, err = resolve(t, []string{"-c", p, "--max-memory", "infinity"}); err != nil || c.MaxMemory != 0 {
		t.Errorf("infinity: %v, %v", c, err)
	}
	if _, err = resolve(t, []string{"--max-memory", "512"}, "a"); err == nil || !strings.Contains(err.Error(), `--max-memory: "512" is 512 bytes`) {
		t.Errorf("flag error: %v", err)
	}
	p = writeFile(t, "command = [\"a\"]\n\nmax-memory = \"2X\"\n")
	if _, err = resolve(t, []string{"-c", p}); err == nil || !strings.Contains(err.Error(), p+`:3:1: max-memory: "2X": unknown unit "X"`) {
		t.Errorf("file error: %v", err)
	}
}

func TestEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env.toml")
	body := "command = [\"/bin/app\"]\n[environment]\nPYTHONUNBUFFERED = \"1\"\nAPP_MODE = \"prod\"\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Environment, " ") != "PYTHONUNBUFFERED=1 APP_MODE=prod" {
		t.Errorf("environment %q", c.Environment)
	}
	for _, bad := range []string{"LISTEN_FDS = \"3\"", "BATON_WORKER = \"1\"", "\"1X\" = \"y\""} {
		if err := os.WriteFile(path, []byte("command = [\"/bin/app\"]\n[environment]\n"+bad+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		var cerr *Error
		if !errors.As(err, &cerr) || cerr.Line != 3 || !strings.HasPrefix(cerr.Key, "environment.") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	for _, bad := range []string{"NOEQUALS", "NOTIFY_SOCKET=/x", "=v"} {
		if _, err := ParseEnv(bad); err == nil {
			t.Errorf("%q accepted", bad)
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
