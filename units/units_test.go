package units

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// instance writes the units as an instance "demo" into a directory.
func instance(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range Names() {
		b, err := Read(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, strings.Replace(name, "@.", "@demo.", 1)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSecurityExposureIsOK(t *testing.T) {
	dir := instance(t)
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", filepath.Join(dir, "baton@demo.service")).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for baton@demo.service: ([0-9.]+) (\w+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no rating in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	if score > 2.0 || string(m[2]) != "OK" {
		t.Errorf("exposure %s %s, want 2.0 or lower (OK):\n%s", m[1], m[2], out)
	}
}

func TestUnitsVerify(t *testing.T) {
	dir := instance(t)
	// The documented examples as an admin would install them: a second
	// named socket (the socket unit and the service drop-in), the drop-in
	// that relaxes the sandbox, the one that opens the socket to a reverse
	// proxy's group.
	for src, dst := range map[string]string{
		"examples/baton-admin@.socket":                "baton-admin@demo.socket",
		"examples/baton@.service.d/admin-socket.conf": "baton@demo.service.d/admin-socket.conf",
		"examples/baton@.service.d/sandbox.conf":      "baton@demo.service.d/sandbox.conf",
		"examples/baton@.socket.d/proxy-group.conf":   "baton@demo.socket.d/proxy-group.conf",
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, dst)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// verify wants the binary named in ExecStart= to exist.
	bin := filepath.Join(dir, "baton")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"baton@demo.service", "baton@demo.socket"} {
		p := filepath.Join(dir, name)
		b, _ := os.ReadFile(p)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "/usr/bin/baton", bin)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("systemd-analyze", "verify", "--man=no", filepath.Join(dir, "baton@demo.socket"), filepath.Join(dir, "baton-admin@demo.socket"), filepath.Join(dir, "baton@demo.service"))
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
