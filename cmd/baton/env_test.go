package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testutil"
)

func TestSettingsFromTheEnvironment(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"BATON_WORKERS=x"}, []string{"run", "/bin/true"}, `BATON_WORKERS: "x" is not a number`},
		{[]string{"BATON_BOOT_TIMEOUT=-1s"}, []string{"run", "/bin/true"}, `BATON_BOOT_TIMEOUT: "-1s" must be positive`},
		{[]string{"BATON_LOG_FORMAT=xml"}, []string{"run", "/bin/true"}, `--log-format "xml"`},
		{[]string{"BATON_WORKERS=2", "BATON_MIN_READY=3"}, []string{"check", "--", "/bin/true"}, "BATON_MIN_READY: 3 is more than the 2 workers"},
	} {
		code, stderr := baton(t, tc.env, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v baton %v: exit %d, stderr %q; want %d and %q", tc.env, tc.args, code, stderr, exitUsage, tc.want)
		}
	}
	// The command line wins over the environment.
	cmd := exec.Command(batonBin, "check", "-w", "3", "--", "/bin/true")
	cmd.Env = []string{"BATON_WORKERS=x"}
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "config OK: 3 workers") {
		t.Errorf("flag over env: %v %q", err, out)
	}
}

// Workers never see the variables that configure baton, only their own.
func TestWorkersDoNotInheritBatonSettings(t *testing.T) {
	testutil.CheckChildLeaks(t)
	dir := t.TempDir()
	cmd := exec.Command(batonBin, "run", "--", "/bin/sh", "-c", `env > "$0/.env.$BATON_WORKER" && mv "$0/.env.$BATON_WORKER" "$0/env.$BATON_WORKER"; exec sleep 600`, dir)
	cmd.Env = []string{
		"PATH=/usr/bin:/bin", "APP_SETTING=kept",
		"BATON_WORKERS=2", "BATON_READINESS=exec", "BATON_GRACEFUL_TIMEOUT=10s", "BATON_LOG_LEVEL=debug",
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	t.Cleanup(func() {
		if !exited {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
	})
	if !testutil.Eventually(t, 20*time.Second, func() bool {
		_, err1 := os.Stat(filepath.Join(dir, "env.1"))
		_, err2 := os.Stat(filepath.Join(dir, "env.2"))
		return err1 == nil && err2 == nil
	}) {
		t.Fatalf("two workers (BATON_WORKERS=2) did not start:\n%s", stderr.String())
	}
	env, err := os.ReadFile(filepath.Join(dir, "env.2"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(env), "\n") {
		name, _, _ := strings.Cut(line, "=")
		switch name {
		case "BATON_WORKERS", "BATON_READINESS", "BATON_GRACEFUL_TIMEOUT", "BATON_LOG_LEVEL":
			t.Errorf("worker sees %s", line)
		}
	}
	for _, want := range []string{"APP_SETTING=kept", "BATON_WORKER=2", "BATON_GENERATION=1"} {
		if !strings.Contains(string(env), want+"\n") {
			t.Errorf("worker lacks %s:\n%s", want, env)
		}
	}
	if !strings.Contains(stderr.String(), "level=debug") {
		t.Errorf("BATON_LOG_LEVEL=debug not applied:\n%s", stderr.String())
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		exited = true
		if err != nil {
			t.Errorf("baton after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("baton did not stop:\n%s", stderr.String())
	}
}

// syncBuffer is a bytes.Buffer that a process's output pump and the test
// can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
