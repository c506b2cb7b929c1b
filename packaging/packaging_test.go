package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const version = "0.1.0"

var (
	deb = filepath.Join("..", "dist", "baton_"+version+"-1_amd64.deb")
	rpm = filepath.Join("..", "dist", "baton-"+version+"-1.x86_64.rpm")
)

func TestMain(m *testing.M) {
	_, err := os.Stat("../dist")
	existed := err == nil
	cmd := exec.Command("./packaging/build")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "VERSION="+version)
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	if !existed {
		os.RemoveAll("../dist")
	}
	os.Exit(code)
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

func TestLintianPedanticHasNoErrorsOrWarnings(t *testing.T) {
	out, err := run(t, "lintian", "--pedantic", "--fail-on", "error,warning", deb)
	if err != nil {
		t.Errorf("lintian: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
			t.Errorf("lintian: %s", line)
		}
	}
}

func TestRpmlintHasNoErrors(t *testing.T) {
	out, err := run(t, "rpmlint", "-r", "rpmlintrc", rpm)
	if err != nil || !strings.Contains(out, " 0 errors") {
		t.Errorf("rpmlint: %v\n%s", err, out)
	}
}

func TestPackageContents(t *testing.T) {
	want := []string{
		"/usr/bin/baton", "/usr/lib/systemd/system/baton@.service", "/usr/lib/systemd/system/baton@.socket",
		"/etc/baton/example.toml", "/usr/share/man/man8/baton.8.gz",
	}
	debList, err := run(t, "dpkg-deb", "-c", deb)
	if err != nil {
		t.Fatal(err, debList)
	}
	rpmList, err := run(t, "rpm", "-qpl", rpm)
	if err != nil {
		t.Fatal(err, rpmList)
	}
	for _, f := range want {
		if !strings.Contains(debList, "."+f+"\n") {
			t.Errorf(".deb lacks %s", f)
		}
		if !strings.Contains(rpmList, f+"\n") {
			t.Errorf(".rpm lacks %s", f)
		}
	}
	// The example config is a config file that upgrades never overwrite.
	if out, _ := run(t, "dpkg-deb", "-f", deb, "Depends"); !strings.Contains(out, "systemd") {
		t.Errorf("Depends: %s", out)
	}
	ctrl := t.TempDir()
	if out, err := run(t, "dpkg-deb", "-e", deb, ctrl); err != nil {
		t.Fatal(err, out)
	}
	conffiles, _ := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if strings.TrimSpace(string(conffiles)) != "/etc/baton/example.toml" {
		t.Errorf("conffiles: %q", conffiles)
	}
	if out, _ := run(t, "rpm", "-qpc", rpm); strings.TrimSpace(out) != "/etc/baton/example.toml" {
		t.Errorf("rpm config files: %q", out)
	}
	if out, _ := run(t, "rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]", rpm); !strings.Contains(out, "/etc/baton/example.toml cn") {
		t.Errorf("example.toml is not %%config(noreplace):\n%s", out)
	}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		if _, err := os.Stat(filepath.Join(ctrl, script)); err != nil {
			t.Errorf(".deb lacks %s: %v", script, err)
		}
	}
}
