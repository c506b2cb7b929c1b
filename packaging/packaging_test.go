package packaging

import (
	"errors"
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
		"/usr/share/doc/baton/README.md", "/usr/share/doc/baton/protocol.md",
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

// rpmScriptlet returns one scriptlet of the built .rpm, as rpm shows it.
func rpmScriptlet(t *testing.T, name string) string {
	t.Helper()
	out, err := run(t, "rpm", "-qp", "--scripts", rpm)
	if err != nil {
		t.Fatal(err, out)
	}
	_, body, ok := strings.Cut(out, name+" scriptlet (using /bin/sh):\n")
	if !ok {
		t.Fatalf("no %s scriptlet in:\n%s", name, out)
	}
	if i := strings.Index(body, " scriptlet (using "); i >= 0 {
		body = body[:strings.LastIndex(body[:i], "\n")+1]
	}
	return body
}

// rpm runs %postun with $1 = 0 on erase and $1 >= 1 on upgrade. Neither
// removes the instances' state: rpm has no purge, and the deb drops state
// only on purge. An upgrade reloads running instances; an erase does not.
// The scriptlet runs in a mount namespace with /var/lib and /run on
// tmpfs, with a stand-in systemctl that records its calls.
func TestRpmPostunKeepsState(t *testing.T) {
	script := rpmScriptlet(t, "postuninstall")
	if strings.Contains(script, "rm ") {
		t.Errorf("%%postun removes files:\n%s", script)
	}
	if os.Geteuid() != 0 {
		t.Skip("running the scriptlet in a mount namespace needs root (CI runs as root)")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "postun.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	fake := "#!/bin/sh\necho \"$*\" >> \"$SYSTEMCTL_LOG\"\n" +
		"case \"$1\" in list-units) echo 'baton@demo.service loaded active running baton pre-fork server for demo';; esac\n"
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{"0", "1", "2"} {
		t.Run("$1="+arg, func(t *testing.T) {
			log := filepath.Join(dir, "systemctl-"+arg+".log")
			sandbox := `set -e
mount -t tmpfs tmpfs /var/lib
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/system /var/lib/private/baton/demo /var/lib/baton
echo data > /var/lib/private/baton/demo/state
rc=0
sh "$DIR/postun.sh" "$ARG" || rc=$?
test -f /var/lib/private/baton/demo/state && test -d /var/lib/baton && echo "state kept"
exit $rc
`
			cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", sandbox)
			cmd.Env = []string{"PATH=" + bin + ":/usr/sbin:/usr/bin:/sbin:/bin", "DIR=" + dir, "ARG=" + arg, "SYSTEMCTL_LOG=" + log}
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "state kept") {
				t.Errorf("%%postun %s: %v\n%s", arg, err, out)
			}
			calls, _ := os.ReadFile(log)
			reloaded := strings.Contains(string(calls), "reload baton@demo.service")
			if !strings.Contains(string(calls), "daemon-reload") || reloaded != (arg != "0") {
				t.Errorf("%%postun %s called systemctl with:\n%s", arg, calls)
			}
		})
	}
}

// changelogs returns the top of the .deb's changelog.Debian.gz and of the
// .rpm's %changelog.
func changelogs(t *testing.T, deb, rpm string) (string, string) {
	t.Helper()
	out, err := exec.Command("sh", "-c", `dpkg-deb --fsys-tarfile "$0" | tar -xO ./usr/share/doc/baton/changelog.Debian.gz | gzip -d`, deb).CombinedOutput()
	if err != nil {
		t.Fatalf("deb changelog: %v\n%s", err, out)
	}
	rpmLog, err := run(t, "rpm", "-qp", "--changelog", rpm)
	if err != nil {
		t.Fatalf("rpm changelog: %v\n%s", err, rpmLog)
	}
	return string(out), rpmLog
}

// A released version's packages carry packaging/changelog.yml as it is.
func TestReleasedVersionChangelog(t *testing.T) {
	debLog, rpmLog := changelogs(t, deb, rpm)
	if !strings.HasPrefix(debLog, "baton ("+version+"-1) unstable; urgency=medium\n  * First release.\n") {
		t.Errorf("deb changelog:\n%s", debLog)
	}
	if first, _, _ := strings.Cut(rpmLog, "\n"); !strings.HasSuffix(first, " - "+version+"-1") {
		t.Errorf("rpm changelog:\n%s", rpmLog)
	}
}

// VERSION=x packaging/build for a version packaging/changelog.yml does not
// know writes a changelog entry for it at the top of both packages'
// changelogs, naming the commit, above the released entries; lintian and
// rpmlint stay clean.
func TestBuildWritesAChangelogEntryForVERSION(t *testing.T) {
	const v = "0.1.1~test1"
	build := exec.Command("./packaging/build")
	build.Dir = ".."
	build.Env = append(os.Environ(), "VERSION="+v)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", v, err, out)
	}
	vDeb := filepath.Join("..", "dist", "baton_"+v+"-1_amd64.deb")
	vRPM := filepath.Join("..", "dist", "baton-"+v+"-1.x86_64.rpm")
	t.Cleanup(func() {
		os.Remove(vDeb)
		os.Remove(vRPM)
	})
	rev, err := exec.Command("git", "describe", "--always", "--dirty", "--abbrev=12").Output()
	if err != nil {
		t.Fatal(err)
	}
	note := "Build of " + v + " from " + strings.TrimSpace(string(rev)) + "."
	debLog, rpmLog := changelogs(t, vDeb, vRPM)
	if !strings.HasPrefix(debLog, "baton ("+v+"-1) unstable; urgency=medium\n  * "+note+"\n") ||
		!strings.Contains(debLog, "\nbaton ("+version+"-1) unstable; urgency=medium\n  * First release.\n") {
		t.Errorf("deb changelog:\n%s", debLog)
	}
	lines := strings.Split(rpmLog, "\n")
	if len(lines) < 2 || !strings.HasSuffix(lines[0], " - "+v+"-1") || lines[1] != "- "+note || !strings.Contains(rpmLog, " - "+version+"-1\n- First release.") {
		t.Errorf("rpm changelog:\n%s", rpmLog)
	}
	if out, err := run(t, "lintian", "--pedantic", "--fail-on", "error,warning", vDeb); err != nil || strings.Contains(out, "W: ") || strings.Contains(out, "E: ") {
		t.Errorf("lintian: %v\n%s", err, out)
	}
	if out, err := run(t, "rpmlint", "-r", "rpmlintrc", vRPM); err != nil || !strings.Contains(out, " 0 errors, 0 warnings") {
		t.Errorf("rpmlint: %v\n%s", err, out)
	}

	// A VERSION that is no version is refused before anything is built.
	bad := exec.Command("./packaging/build")
	bad.Dir = ".."
	bad.Env = append(os.Environ(), `VERSION=1.0"; x`)
	out, err := bad.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), `VERSION=1.0"; x is not a version`) {
		t.Errorf("bad VERSION: %v\n%s", err, out)
	}
}
