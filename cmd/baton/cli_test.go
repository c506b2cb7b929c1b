package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// batonIn runs the real binary in dir with env and returns its exit code,
// stdout and stderr. A run that outlives the deadline fails the test: the
// commands here must all return at once.
func batonIn(t *testing.T, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, batonBin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("baton %v did not return: %v\nstderr: %s", args, err, stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stdout.String(), stderr.String()
}

// Every command's help, however asked for, is on stdout with exit 0, in one
// layout: the usage line, a blank line, one paragraph, a blank line, the
// flags (-h, --help among them).
func TestHelpGoesToStdoutInOneLayout(t *testing.T) {
	for _, c := range commands {
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}} {
			code, stdout, stderr := batonIn(t, "", nil, args...)
			if code != 0 || stderr != "" {
				t.Errorf("baton %v: exit %d, stderr %q; want 0 and nothing", args, code, stderr)
				continue
			}
			parts := strings.Split(stdout, "\n\n")
			if len(parts) != 3 || parts[0] != c.usageLine() || strings.Contains(parts[1], "\n\n") ||
				!strings.HasPrefix(parts[2], "flags:\n") || !strings.Contains(parts[2], "-h, --help") {
				t.Errorf("baton %v: not usage, paragraph, flags:\n%s", args, stdout)
			}
			for _, line := range strings.Split(stdout, "\n") {
				if len(line) > 79 {
					t.Errorf("baton %v: line wider than 79 columns: %q", args, line)
				}
			}
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		code, stdout, stderr := batonIn(t, "", nil, args...)
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "usage: baton COMMAND") {
			t.Errorf("baton %v: exit %d, stderr %q, stdout %q", args, code, stderr, stdout)
		}
		for _, c := range commands {
			if !strings.Contains(stdout, "\n  "+c.name+" ") {
				t.Errorf("baton %v does not list %s:\n%s", args, c.name, stdout)
			}
		}
	}
	// Flags a command has appear in its help.
	_, stdout, _ := batonIn(t, "", nil, "run", "--help")
	for _, f := range []string{"--max-memory SIZE", "--boot-timeout DURATION", "-w, --workers N", "--log-format FORMAT"} {
		if !strings.Contains(stdout, f) {
			t.Errorf("baton run --help lacks %q", f)
		}
	}
	// After the program, --help is the program's.
	code, _, stderr := batonIn(t, "", nil, "check", "--", "/no/such/program", "--help")
	if code != 2 || !strings.Contains(stderr, `"/no/such/program": no such file or directory`) {
		t.Errorf("--help after the program: exit %d, %q", code, stderr)
	}
}

// Usage errors go to stderr, with the command's usage line, and exit 2;
// nothing on stdout.
func TestUsageErrorsGoToStderrWithExit2(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		want, usage string
	}{
		{nil, "no command given", "usage: baton COMMAND"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`, "usage: baton COMMAND"},
		{[]string{"run", "--bogus"}, "unknown flag: --bogus", "usage: baton run [FLAGS] [--] PROGRAM [ARGS]"},
		{[]string{"reload", "one", "two"}, `name one baton, got ["one" "two"]`, "usage: baton reload"},
		{[]string{"status", "--control", "/x.sock", "myapp"}, "a name (myapp) and --control name the baton twice", "usage: baton status"},
		{[]string{"status", "-x"}, "unknown shorthand flag: 'x'", "usage: baton status"},
		{[]string{"check", "--unit"}, "flag needs an argument: --unit", "usage: baton check"},
		{[]string{"upgrade", "--wait"}, "unknown flag: --wait", "usage: baton upgrade"},
		{[]string{"units", "extra"}, `unexpected arguments ["extra"]`, "usage: baton units [-o DIR]"},
		{[]string{"version", "--json"}, "unknown flag: --json", "usage: baton version"},
		{[]string{"help", "frobnicate"}, `unknown command "frobnicate"`, "usage: baton help [COMMAND]"},
		{[]string{"help", "run", "check"}, "help takes one command", "usage: baton help [COMMAND]"},
	} {
		code, stdout, stderr := batonIn(t, "", nil, tc.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "\n"+tc.usage) {
			t.Errorf("baton %v: exit %d, stdout %q, stderr %q; want 2, nothing, and %q with %q", tc.args, code, stdout, stderr, tc.want, tc.usage)
		}
	}
}

// A worker command that cannot be executed stops baton run at once (exit
// 2, the reason and where the command was set) and fails baton check; one
// that can, as the exec shim resolves it, passes.
func TestWorkerCommandIsCheckedBeforeStart(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"bin/app":    "#!/bin/sh\nexit 0\n",
		"app.sh":     "#!/bin/sh\nexit 0\n",
		"py.sh":      "#!/usr/bin/env no-such-python\n",
		"notexec.sh": "#!/bin/sh\n",
	} {
		mode := os.FileMode(0o755)
		if name == "notexec.sh" {
			mode = 0o644
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "app.toml")
	if err := os.WriteFile(cfg, []byte("workers = 2\ncommand = [\"./py.sh\", \"--port\", \"8000\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := "PATH=" + bin + ":/usr/bin:/bin"
	for _, tc := range []struct {
		args []string
		want string // empty: it passes
	}{
		{[]string{"--", "/no/such/app"}, `worker command: "/no/such/app": no such file or directory`},
		{[]string{"--", "no-such-app"}, `worker command: "no-such-app": not found in PATH=` + bin + ":/usr/bin:/bin"},
		{[]string{"--", "./missing.sh"}, `"./missing.sh": no such file or directory (relative to the working directory ` + dir + ")"},
		{[]string{"--", "./notexec.sh"}, `"./notexec.sh": not executable (mode 0644): chmod +x it`},
		{[]string{"--", "./bin"}, `"./bin": is a directory`},
		{[]string{"-c", cfg}, cfg + `:2:1: command: "./py.sh": "#!/usr/bin/env no-such-python" runs env, which cannot execute "no-such-python": not found in PATH=`},
		{[]string{"--", "app"}, ""},
		{[]string{"--", "./app.sh"}, ""},
		{[]string{"--", "bin/app"}, ""},
		{[]string{"--", "sh", "-c", "exit 0"}, ""},
	} {
		code, stdout, stderr := batonIn(t, dir, []string{path}, append([]string{"check"}, tc.args...)...)
		if tc.want == "" {
			if code != 0 || !strings.Contains(stdout, "config OK") {
				t.Errorf("baton check %v: exit %d, stdout %q, stderr %q; want 0 and config OK", tc.args, code, stdout, stderr)
			}
			continue
		}
		if code != 2 || !strings.Contains(stderr, tc.want) || strings.Contains(stdout, "config OK") {
			t.Errorf("baton check %v: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, stdout, stderr, tc.want)
		}
		code, _, stderr = batonIn(t, dir, []string{path}, append([]string{"run", "-b", "127.0.0.1:0"}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("baton run %v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
	// check names what the command resolved to.
	_, stdout, _ := batonIn(t, dir, []string{path}, "check", "-w", "3", "--", "app")
	if want := "flags: config OK: 3 workers of app (" + filepath.Join(bin, "app") + ")"; !strings.HasPrefix(stdout, want) {
		t.Errorf("check: %q, want %q", stdout, want)
	}
}

func TestUnitsCreatesTheDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "systemd", "system")
	code, stdout, stderr := batonIn(t, "", nil, "units", "-o", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, name := range []string{"baton@.service", "baton@.socket"} {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("[Install]")) {
			t.Errorf("%s: %v", p, err)
		}
		if !strings.Contains(stdout, p+"\n") {
			t.Errorf("stdout %q does not name %s", stdout, p)
		}
	}
	// Writing again over existing files works; a file where the directory
	// should be is an error naming it.
	if code, _, stderr := batonIn(t, "", nil, "units", "-o", dir); code != 0 {
		t.Errorf("again: exit %d: %s", code, stderr)
	}
	file := filepath.Join(dir, "baton@.socket")
	if code, _, stderr := batonIn(t, "", nil, "units", "-o", filepath.Join(file, "sub")); code != 1 || !strings.Contains(stderr, file) {
		t.Errorf("under a file: exit %d, %q", code, stderr)
	}
}
