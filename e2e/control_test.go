package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Under systemd, a worker that runs as baton's own user (as under the
// shipped unit's DynamicUser=) is refused on the control socket, while
// systemctl reload (ExecReload=baton reload --wait, a process systemd
// starts beside baton) and an operator's baton status go on working.
func TestWorkersRefusedOnTheControlSocket(t *testing.T) {
	out := filepath.Join(workDir, "wctl.out")
	os.Remove(out)
	t.Cleanup(func() { os.Remove(out) })
	script := fmt.Sprintf(`if [ "$BATON_WORKER" = 1 ] && [ "$BATON_GENERATION" = 1 ]; then %s status --control "$RUNTIME_DIRECTORY/control.sock" >%s.tmp 2>&1; mv %s.tmp %s; fi; exec %s`,
		batonBin, out, out, out, helloBin)
	r := newReloadService(t, "wctl", fmt.Sprintf("command = [\"/bin/sh\", \"-c\", %q]\nworkers = 2\n", script))
	var answer []byte
	r.waitFor("the worker's status request to be answered", 60*time.Second, func() bool {
		var err error
		answer, err = os.ReadFile(out)
		return err == nil
	})
	if !strings.Contains(string(answer), "refused: pid") || !strings.Contains(string(answer), "workers may not use the control socket") {
		t.Errorf("a worker's baton status was not refused: %s", answer)
	}
	r.waitFor("the refusal in baton's log", 10*time.Second, func() bool {
		return strings.Contains(r.readLog(), "workers may not use the control socket (worker-control = false) (it asked for status)")
	})

	r.systemctl("reload", r.name+".service")
	if st := r.show("StatusText"); st != "2/2 workers ready, generation 2" {
		t.Errorf("after systemctl reload: %q", st)
	}
	control := filepath.Join(mgr.RuntimeDir, r.name, "control.sock")
	if b, err := exec.Command(batonBin, "status", "--control", control).CombinedOutput(); err != nil || !strings.Contains(string(b), "generation 2") {
		t.Errorf("the operator's baton status: %v\n%s", err, b)
	}
}
