package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// handWritten is a unit as users write one: Type=notify, ExecStart= and
// ExecReload=, nothing else baton-specific (no RuntimeDirectory=), behind
// a socket unit.
func handWritten(t *testing.T, name string, extra string) *reloadService {
	t.Helper()
	port := freePort(t)
	path := filepath.Join(workDir, name+".toml")
	r := &reloadService{config: path, port: port}
	r.writeConfig(t, "command = [\"HELLO\"]\nworkers = 2\n")
	r.service = newService(t, name,
		fmt.Sprintf("Type=notify\nExecStart=%s run -c %s\nExecReload=%s reload --wait\n%s", batonBin, path, batonBin, extra),
		fmt.Sprintf("ListenStream=127.0.0.1:%d\nFileDescriptorName=web\n", port))
	r.systemctl("start", name+".socket", name+".service")
	return r
}

// batonCLI runs the baton binary as an operator's shell would, with the
// user manager's XDG_RUNTIME_DIR.
func batonCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(batonBin, args...)
	cmd.Env = mgr.Env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// statusPID is the pid `baton status --json ARGS` reports.
func statusPID(t *testing.T, args ...string) int {
	t.Helper()
	out, err := batonCLI(t, append([]string{"status", "--json"}, args...)...)
	if err != nil {
		t.Fatalf("baton status --json %v: %v\n%s", args, err, out)
	}
	var st struct{ PID int }
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return st.PID
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestHandWrittenUnitReloadsAndIsFoundWithoutFlags(t *testing.T) {
	r := handWritten(t, "handmade", "Restart=on-failure\nRestartSec=100ms\n")
	pid, err := mgr.MainPID(ctx(t), "handmade.service")
	if err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join(mgr.RuntimeDir, "baton", "handmade")
	if b, err := os.ReadFile(filepath.Join(entry, "baton.pid")); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
		t.Fatalf("registry entry: %q %v\n%s", b, err, r.readLog())
	}

	// ExecReload= finds its baton through $MAINPID.
	r.systemctl("reload", "handmade.service")
	if st := r.show("StatusText"); st != "2/2 workers ready, generation 2" {
		t.Errorf("after reload: %q", st)
	}
	if log := r.readLog(); !strings.Contains(log, "reloaded: 2/2 workers ready, generation 2") {
		t.Errorf("ExecReload= did not report the reload:\n%s", log)
	}

	// An operator's shell: the only baton, by unit name, by pid.
	for _, args := range [][]string{nil, {"handmade"}, {"handmade.service"}, {strconv.Itoa(pid)}} {
		if got := statusPID(t, args...); got != pid {
			t.Errorf("baton status %v: pid %d, want %d", args, got, pid)
		}
	}
	if out, err := batonCLI(t, "reload", "--wait", "handmade"); err != nil || !strings.Contains(out, "generation 3") {
		t.Errorf("baton reload handmade: %v\n%s", err, out)
	}

	// With two running, naming none is a usage error that lists both.
	other := handWritten(t, "handmade-two", "")
	otherPID, _ := mgr.MainPID(ctx(t), "handmade-two.service")
	out, err := batonCLI(t, "status")
	if code := exitCode(err); code != 2 || !strings.Contains(out, "more than one baton runs") ||
		!strings.Contains(out, fmt.Sprintf("handmade (pid %d, %s)", pid, filepath.Join(entry, "control.sock"))) ||
		!strings.Contains(out, fmt.Sprintf("handmade-two (pid %d,", otherPID)) {
		t.Errorf("two batons: exit %d\n%s", code, out)
	}
	if got := statusPID(t, "handmade-two"); got != otherPID {
		t.Errorf("by name: %d, want %d", got, otherPID)
	}
	if out, err := batonCLI(t, "status", "nosuch"); exitCode(err) != 1 || !strings.Contains(out, `no running baton found named "nosuch"`) {
		t.Errorf("unknown name: %v\n%s", err, out)
	}
	other.systemctl("stop", "handmade-two.service")
	if _, err := os.Lstat(filepath.Join(mgr.RuntimeDir, "baton", "handmade-two")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a stopped baton's entry is left: %v", err)
	}

	// Killed outright, baton leaves its entry behind; it is not listed,
	// and the restarted baton takes the name over.
	r.systemctl("kill", "--kill-whom=main", "-s", "SIGKILL", "handmade.service")
	var newPID int
	r.waitFor("the restarted baton", 30*time.Second, func() bool {
		p, _ := mgr.MainPID(ctx(t), "handmade.service")
		st := r.show("ActiveState")
		if p != 0 && p != pid && st == "active" {
			newPID = p
			return true
		}
		return false
	})
	if got := statusPID(t); got != newPID {
		t.Errorf("after the restart: pid %d, want %d", got, newPID)
	}
	r.systemctl("reload", "handmade.service")

	r.systemctl("stop", "handmade.service")
	if _, err := os.Lstat(entry); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the entry is left after stop: %v", err)
	}
	if out, err := batonCLI(t, "status"); exitCode(err) != 1 || !strings.Contains(out, "no running baton found in "+filepath.Join(mgr.RuntimeDir, "baton")) {
		t.Errorf("none running: %v\n%s", err, out)
	}
}

// A unit with a RuntimeDirectory= of its own is found by name through a
// link in the registry.
func TestRuntimeDirectoryElsewhereIsLinked(t *testing.T) {
	r := handWritten(t, "linked", "RuntimeDirectory=linked-app\n")
	pid, _ := mgr.MainPID(ctx(t), "linked.service")
	link := filepath.Join(mgr.RuntimeDir, "baton", "linked")
	if target, err := os.Readlink(link); err != nil || target != filepath.Join(mgr.RuntimeDir, "linked-app") {
		t.Fatalf("link %q %v\n%s", target, err, r.readLog())
	}
	if got := statusPID(t, "linked"); got != pid {
		t.Errorf("by name: pid %d, want %d", got, pid)
	}
	r.systemctl("reload", "linked.service")
	r.systemctl("stop", "linked.service")
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link left after stop: %v", err)
	}
}

// SIGHUP is answered as Type=notify-reload requires even when the reload
// is refused: RELOADING=1 at once, READY=1 when it is over. systemd 252
// has no Type=notify-reload, but it reads the same pair from a Type=notify
// service as a reload of its own (state reloading, then active again),
// which moves StateChangeTimestamp; without READY=1 the unit would stay
// reloading until TimeoutStartSec=.
func TestRefusedSIGHUPReloadEndsTheReload(t *testing.T) {
	r := handWritten(t, "hup", "TimeoutStartSec=10min\n")
	before := r.show("StateChangeTimestampMonotonic")
	r.writeConfig(t, "command = [\"HELLO\"]\nworkers = 2\nworkerz = 3\n")
	r.systemctl("kill", "--kill-whom=main", "-s", "SIGHUP", "hup.service")
	r.waitFor("the refusal", 20*time.Second, func() bool {
		return strings.Contains(r.readLog(), "refused: invalid config or worker command, nothing changed: "+r.config+":3:1: workerz: unknown key")
	})
	r.waitFor("the unit active again after a reload", 20*time.Second, func() bool {
		return r.show("ActiveState") == "active" && r.show("StateChangeTimestampMonotonic") != before
	})
	if st := r.show("StatusText"); !strings.HasPrefix(st, "2/2 workers ready, generation 1, last reload failed: refused: ") {
		t.Errorf("status %q", st)
	}
	// A good config over SIGHUP rolls a generation, and ends the same way.
	r.writeConfig(t, "command = [\"HELLO\"]\nworkers = 2\n")
	r.systemctl("kill", "--kill-whom=main", "-s", "SIGHUP", "hup.service")
	r.waitFor("generation 2, active", 30*time.Second, func() bool {
		return r.show("StatusText") == "2/2 workers ready, generation 2" && r.show("ActiveState") == "active"
	})
}
