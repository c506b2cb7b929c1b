package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var batonBin, helloBin string

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	dir, err := os.MkdirTemp("", "baton-cmd-")
	if err != nil {
		panic(err)
	}
	batonBin = filepath.Join(dir, "baton")
	helloBin = filepath.Join(dir, "hello")
	for bin, pkg := range map[string]string{batonBin: ".", helloBin: "../../examples/hello"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			os.Stderr.Write(out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// baton runs the real binary and returns its exit code and stderr.
func baton(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(batonBin, args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stderr.String()
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(batonBin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "baton ") {
		t.Fatalf("%q %v", out, err)
	}
}

func TestBadInvocationsExit2WithTheReason(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "app.toml")
	if err := os.WriteFile(cfg, []byte("command = [\"/bin/true\"]\nworkers = 2\n\n[sockets.web]\nlisten = \"tcp://127.0.0.1:80\"\nbacklog = \"lots\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage: baton COMMAND"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"run", "--workers", "many", "--", "/bin/true"}, `invalid argument "many" for "-w, --workers"`},
		{[]string{"run", "--bogus", "/bin/true"}, "unknown flag: --bogus"},
		{[]string{"run", "-w", "2"}, "no worker command"},
		{[]string{"run", "-b", "web=localhost:80", "/bin/true"}, `--bind: "web=localhost:80": address "localhost:80": "localhost" is not an IP address`},
		{[]string{"run", "--boot-timeout", "-5s", "/bin/true"}, `--boot-timeout: "-5s" must be positive`},
		{[]string{"run", "--log-format", "xml", "/bin/true"}, `--log-format "xml"`},
		{[]string{"run", "-c", cfg}, cfg + ":6:11: sockets.web.backlog: want an integer, not a string"},
	} {
		code, stderr := baton(t, nil, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("baton %v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestMalformedSocketActivationEnvironment(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"LISTEN_FDS=two", "LISTEN_PID=1"}, `LISTEN_PID="1": sockets were passed to pid 1`},
		{[]string{"LISTEN_FDS=1"}, `LISTEN_PID="": not set, but LISTEN_FDS is`},
		{[]string{"LISTEN_FDS=1", "LISTEN_PID=x"}, `LISTEN_PID="x": not a pid`},
	} {
		code, stderr := baton(t, tc.env, "run", "--", "/bin/true")
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("env %v: exit %d, stderr %q; want 1 and %q", tc.env, code, stderr, tc.want)
		}
	}
	// With the right pid, a bad count is named too: a shell sets LISTEN_PID
	// to its own pid and execs baton, which keeps it.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=two exec "$0" run -- /bin/true`, batonBin)
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), `socket activation: LISTEN_FDS="two": not a count of file descriptors`) {
		t.Errorf("got %q", out)
	}
	cmd = exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec "$0" run -- /bin/true 3</etc/passwd`, batonBin)
	out, _ = cmd.CombinedOutput()
	if !strings.Contains(string(out), `LISTEN_FDS="1": fd 3 (web) is not a socket but a regular file`) {
		t.Errorf("got %q", out)
	}
}
