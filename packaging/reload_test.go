package packaging

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

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/testutil"
)

// installed boots release with the .deb installed and hello in
// /usr/local/bin.
func installed(t *testing.T, release, hello string) *container {
	t.Helper()
	c := boot(t, release)
	c.copyIn(deb, "/root/baton.deb", 0o644)
	c.copyIn(hello, "/usr/local/bin/hello", 0o755)
	c.must("dpkg", "-i", "/root/baton.deb")
	return c
}

// unit writes /etc/systemd/system/NAME.service (and NAME.socket when
// socket is not empty), reloads systemd and starts them, waiting until the
// service is active.
func (c *container) unit(name, service, socket string) {
	c.t.Helper()
	c.writeFile("/etc/systemd/system/"+name+".service", "[Service]\n"+service)
	units := []string{name + ".service"}
	if socket != "" {
		c.writeFile("/etc/systemd/system/"+name+".socket", "[Socket]\n"+socket)
		units = append([]string{name + ".socket"}, units...)
	}
	c.must("systemctl", "daemon-reload")
	c.must(append([]string{"systemctl", "start"}, units...)...)
	c.waitActive(name + ".service")
}

func (c *container) writeFile(path, body string) {
	c.t.Helper()
	full := filepath.Join(c.root, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

func (c *container) show(unit, prop string) string {
	c.t.Helper()
	return strings.TrimSpace(c.must("systemctl", "show", "-p", prop, "--value", unit))
}

// waitActive waits out the start job: systemd merges a reload into a start
// job still running.
func (c *container) waitActive(unit string) {
	c.t.Helper()
	if !testutil.Eventually(c.t, 30*time.Second, func() bool { return c.show(unit, "ActiveState") == "active" }) {
		out, _ := c.run("systemctl", "status", "--no-pager", unit)
		c.t.Fatalf("%s is %s:\n%s", unit, c.show(unit, "ActiveState"), out)
	}
}

// status is `baton status --json ARGS` in the container.
func (c *container) status(args ...string) *control.Status {
	c.t.Helper()
	out := c.must(append([]string{"baton", "status", "--json"}, args...)...)
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("%v: %s", err, out)
	}
	return &st
}

func (c *container) mainPID(unit string) int {
	c.t.Helper()
	pid, err := strconv.Atoi(c.show(unit, "MainPID"))
	if err != nil || pid == 0 {
		c.t.Fatalf("%s has no main pid: %q %v", unit, c.show(unit, "MainPID"), err)
	}
	return pid
}

// A system unit as users write one (Type=notify, ExecStart=, ExecReload=,
// nothing baton-specific: no RuntimeDirectory=) reloads under load with no
// failed request, and an admin's shell finds it, and the packaged
// instance, with no flag; on systemd 252 and 257.
func TestHandWrittenUnitInBootedDebian(t *testing.T) {
	hello := buildHello(t)
	for _, release := range releases {
		t.Run(release, func(t *testing.T) {
			c := installed(t, release, hello)
			c.writeFile("/etc/handmade.toml", "command = [\"/usr/local/bin/hello\"]\nworkers = 2\n")
			c.unit("handmade", "Type=notify\nExecStart=/usr/bin/baton run -c /etc/handmade.toml\nExecReload=/usr/bin/baton reload --wait\n",
				"ListenStream=127.0.0.1:8090\nFileDescriptorName=web\n")
			pid := c.mainPID("handmade.service")
			// /run is the container's own tmpfs: read it from inside.
			if b, err := c.run("cat", "/run/baton/handmade/baton.pid"); err != nil || strings.TrimSpace(b) != strconv.Itoa(pid) {
				t.Errorf("registry entry: %q %v", b, err)
			}

			l := c.startLoad("http://127.0.0.1:8090/")
			l.served(500)
			c.must("systemctl", "reload", "handmade.service")
			l.served(500)
			if r := l.finish(); r.Failed > 0 {
				t.Errorf("reload under load: %s", r)
			}
			if st := c.show("handmade.service", "StatusText"); st != "2/2 workers ready, generation 2" {
				t.Errorf("after reload: %q", st)
			}
			for _, args := range [][]string{nil, {"handmade"}, {strconv.Itoa(pid)}} {
				if st := c.status(args...); st.PID != pid || st.Generation != 2 {
					t.Errorf("baton status %v: pid %d generation %d, want %d and 2", args, st.PID, st.Generation, pid)
				}
			}

			// The packaged instance beside it: by name; with both running,
			// naming none lists them.
			c.writeFile("/etc/baton/demo.toml", "command = [\"/usr/local/bin/hello\"]\nworkers = 1\n")
			c.writeFile("/etc/systemd/system/baton@demo.socket.d/listen.conf", "[Socket]\nListenStream=\nListenStream=127.0.0.1:8091\n")
			c.must("systemctl", "daemon-reload")
			c.must("systemctl", "start", "baton@demo.socket", "baton@demo.service")
			c.waitActive("baton@demo.service")
			demo := c.mainPID("baton@demo.service")
			if st := c.status("demo"); st.PID != demo {
				t.Errorf("baton status demo: pid %d, want %d", st.PID, demo)
			}
			out, err := c.run("baton", "status")
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out, fmt.Sprintf("demo (pid %d, /run/baton/demo/control.sock)", demo)) ||
				!strings.Contains(out, fmt.Sprintf("handmade (pid %d, /run/baton/handmade/control.sock)", pid)) {
				t.Errorf("two batons: %v\n%s", err, out)
			}

			c.must("systemctl", "stop", "handmade.service", "handmade.socket")
			if out, err := c.run("ls", "-A", "/run/baton"); err != nil || strings.TrimSpace(out) != "demo" {
				t.Errorf("the registry after stop: %v %q", err, out)
			}
			if st := c.status(); st.PID != demo {
				t.Errorf("the one left: pid %d, want %d", st.PID, demo)
			}
		})
	}
}

// Type=notify-reload on systemd 257: systemctl reload sends SIGHUP and
// returns only once the new generation serves; a reload into a broken
// command or an invalid config ends too, with exit 0, as systemd has no way
// to hear of a failed signalled reload (only of a missing READY=1, after
// TimeoutStartSec=, which is why the test sets it far beyond its own
// timeout for systemctl).
func TestNotifyReloadInBootedDebian13(t *testing.T) {
	hello := buildHello(t)
	c := installed(t, trixie, hello)
	// Each worker takes a second to boot: a reload that returned early
	// would find the old generation still serving.
	slow := "command = [\"/bin/sh\", \"-c\", \"sleep 1; exec /usr/local/bin/hello\"]\nworkers = 2\n"
	c.writeFile("/etc/nr.toml", slow)
	c.unit("nr", "Type=notify-reload\nExecStart=/usr/bin/baton run -c /etc/nr.toml\nKillMode=mixed\nTimeoutStartSec=10min\n",
		"ListenStream=127.0.0.1:8092\nFileDescriptorName=web\n")
	reload := func() (string, error) { return c.run("timeout", "120", "systemctl", "reload", "nr.service") }

	l := c.startLoad("http://127.0.0.1:8092/")
	l.served(500)
	if out, err := reload(); err != nil {
		t.Fatalf("systemctl reload: %v\n%s", err, out)
	}
	st := c.status("nr")
	ready := 0
	for _, w := range st.Pool {
		if w.State == "ready" && !w.Retiring {
			ready++
			if w.Generation != 2 {
				t.Errorf("worker %d of generation %d serves after the reload returned", w.PID, w.Generation)
			}
		}
	}
	if st.Generation != 2 || st.Reloading || ready != 2 {
		t.Errorf("when systemctl reload returned: generation %d, reloading %v, %d ready", st.Generation, st.Reloading, ready)
	}
	l.served(500)
	if r := l.finish(); r.Failed > 0 {
		t.Errorf("reload under load: %s", r)
	}

	// A broken command: the reload ends, with exit 0; the old generation
	// serves on, and the status says why.
	c.writeFile("/etc/nr.toml", "command = [\"/bin/sh\", \"-c\", \"echo cannot start; exit 4\"]\nworkers = 2\n")
	out, err := reload()
	t.Logf("systemctl reload into a broken command: %v %q", err, out)
	if err != nil {
		t.Errorf("systemctl reload: %v (systemd 257 cannot hear of a failed signalled reload; this exits 0 or times out)\n%s", err, out)
	}
	st = c.status("nr")
	if last := st.Reloads[len(st.Reloads)-1]; last.OK || !strings.Contains(last.Error, "exited with status 4") || !strings.Contains(last.Error, "generation 2 keeps serving") || st.Generation != 2 || st.Reloading {
		t.Errorf("after a broken reload: %+v", st)
	}
	// STATUS= follows READY=1 (it is coalesced, sent after).
	if !testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(c.show("nr.service", "StatusText"), "last reload failed") }) || c.show("nr.service", "ActiveState") != "active" {
		t.Errorf("status %q, state %s", c.show("nr.service", "StatusText"), c.show("nr.service", "ActiveState"))
	}

	// An invalid config: refused before any rollout, and still answered.
	c.writeFile("/etc/nr.toml", slow+"workerz = 3\n")
	if out, err := reload(); err != nil {
		t.Errorf("systemctl reload with an invalid config: %v\n%s", err, out)
	}
	if log := c.must("journalctl", "-u", "nr.service", "--no-pager"); !strings.Contains(log, "nothing changed: /etc/nr.toml:3:1: workerz: unknown key") {
		t.Errorf("the refusal is not in the journal:\n%s", log)
	}
	if st := c.status("nr"); st.Generation != 2 || c.show("nr.service", "ActiveState") != "active" {
		t.Errorf("after an invalid config: generation %d, %s", st.Generation, c.show("nr.service", "ActiveState"))
	}

	// baton check says what the unit type costs; it reloads again once
	// the config is good.
	c.writeFile("/etc/nr.toml", slow)
	out = c.must("baton", "check", "-c", "/etc/nr.toml", "--unit", "nr.service")
	if !strings.Contains(out, "nr.service: warning: Type=notify-reload: systemd cannot hear that a reload failed") {
		t.Errorf("baton check:\n%s", out)
	}
	if out, err := reload(); err != nil {
		t.Fatalf("systemctl reload: %v\n%s", err, out)
	}
	// (The broken reload used generation 3 up.)
	if st := c.status("nr"); st.Generation != 4 || !st.Reloads[len(st.Reloads)-1].OK {
		t.Errorf("after a good reload: %+v", st)
	}
}
