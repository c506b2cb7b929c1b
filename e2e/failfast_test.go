package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A worker command that cannot be executed fails the start at once, with
// the reason in the log and baton's usage exit status, instead of a
// service that is "active" while its workers crash-loop. It is resolved
// with the PATH the unit gives baton, which the workers inherit.
func TestUnexecutableCommandFailsTheStart(t *testing.T) {
	script := filepath.Join(workDir, "failfast-app.py")
	if err := os.WriteFile(script, []byte("#!/usr/bin/env no-such-python\nprint('hi')\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(script) })
	for _, tc := range []struct {
		name, command, want string
	}{
		{"failfast-path", "no-such-app --port 8000", `worker command: "no-such-app": not found in PATH=/usr/bin:/bin`},
		{"failfast-shebang", script, fmt.Sprintf(`worker command: %q: "#!/usr/bin/env no-such-python" runs env, which cannot execute "no-such-python": not found in PATH=/usr/bin:/bin`, script)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			s := newService(t, tc.name,
				fmt.Sprintf("Type=notify\nNotifyAccess=main\nEnvironment=PATH=/usr/bin:/bin\nExecStart=%s run -w 2 -b 127.0.0.1:%d -- %s\n", batonBin, port, tc.command), "")
			start := time.Now()
			out, err := mgr.Systemctl(ctx(t), "start", s.name+".service")
			if err == nil {
				t.Fatalf("systemctl start succeeded: %s", out)
			}
			t.Logf("start failed after %s", time.Since(start).Round(time.Millisecond))
			if st, code := s.show("Result"), s.show("ExecMainStatus"); st != "exit-code" || code != "2" {
				t.Errorf("Result=%s ExecMainStatus=%s, want exit-code and 2", st, code)
			}
			if log := s.readLog(); !strings.Contains(log, tc.want) || strings.Contains(log, "spawn") {
				t.Errorf("log lacks %q (or a worker was spawned):\n%s", tc.want, log)
			}
		})
	}
}

// A reload to a command that cannot be executed is refused before any
// worker is spawned; the old generation keeps serving.
func TestReloadToUnexecutableCommandIsRefused(t *testing.T) {
	r := newReloadService(t, "reload-unexecutable", helloConfig)
	r.writeConfig(t, strings.Replace(helloConfig, `["HELLO"]`, `["/run/no/such/app"]`, 1))
	if out, err := mgr.Systemctl(ctx(t), "reload", r.name+".service"); err == nil {
		t.Fatalf("systemctl reload succeeded: %s", out)
	}
	want := fmt.Sprintf(`reload refused, nothing changed: %s:1:1: command: "/run/no/such/app": no such file or directory`, r.config)
	if log := r.readLog(); !strings.Contains(log, want) || strings.Contains(log, "rolling generation") {
		t.Errorf("log lacks %q (or a rollout started):\n%s", want, log)
	}
	// Generation 1 serves on, and the status says why the reload did not
	// happen.
	if st := r.show("StatusText"); !strings.HasPrefix(st, "4/4 workers ready, generation 1, last reload failed: refused: ") || !strings.Contains(st, "/run/no/such/app") {
		t.Errorf("status %q, want generation 1 unchanged and the refusal", st)
	}
	if code, _ := get(t, r.url("/")); code != 200 {
		t.Errorf("GET: %d", code)
	}
	if st := r.show("ActiveState"); st != "active" {
		t.Errorf("state %s", st)
	}
}
