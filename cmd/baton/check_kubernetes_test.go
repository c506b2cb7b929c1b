package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckKubernetes(t *testing.T) {
	deploy := filepath.Join("..", "..", "deploy")
	manifests := filepath.Join(deploy, "kubernetes", "deployment.yaml")
	configMap := filepath.Join(deploy, "kubernetes", "configmap.yaml")

	// The shipped manifests agree with the shipped config, read from the
	// ConfigMap or given with -c; this shell's BATON_* do not count.
	for _, args := range [][]string{
		{"check", "--kubernetes", manifests, "--kubernetes", configMap},
		{"check", "-c", filepath.Join(deploy, "baton.toml"), "--kubernetes", manifests},
	} {
		cmd := exec.Command(batonBin, args...)
		cmd.Env = []string{"BATON_DRAIN_DELAY=1h"}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "deployment/hello: consistent with the config") {
			t.Errorf("baton %v: %v\n%s", args, err, out)
		}
	}

	// A grace period too short for the drain: exit 1, the finding, the fix.
	body, err := os.ReadFile(manifests)
	if err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(t.TempDir(), "short.yaml")
	if err := os.WriteFile(short, []byte(strings.Replace(string(body), "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 10", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(batonBin, "check", "--kubernetes", short, "--kubernetes", configMap)
	out, err := cmd.Output()
	if code := cmd.ProcessState.ExitCode(); code != exitFailure || !strings.Contains(string(out), "deployment/hello, container baton: error: terminationGracePeriodSeconds is 10, shorter than drain-delay 5s + graceful-timeout 20s + 5s for baton itself = 30s") ||
		!strings.Contains(string(out), "set terminationGracePeriodSeconds: 30") {
		t.Errorf("short grace period: exit %d (%v)\n%s", code, err, out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "-w", "3", "--kubernetes", manifests}, "with --kubernetes the settings come from the manifests and -c FILE; drop [--workers]"},
		{[]string{"check", "--kubernetes", "/nonexistent.yaml"}, "read manifests: open /nonexistent.yaml"},
	} {
		code, stderr := baton(t, nil, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("baton %v: exit %d, stderr %q; want %q", tc.args, code, stderr, tc.want)
		}
	}
}
