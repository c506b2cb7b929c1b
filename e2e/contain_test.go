package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/procfs"
	"github.com/batonhq/baton/internal/testutil"
)

// escapeWorker is a worker that forks a child which leaves its session
// (setsid) and holds 64 MiB, then becomes the example server: what a
// gunicorn or puma master with its own workers looks like, and what an app
// that daemonises a helper looks like.
const escapeWorker = `#!/bin/sh
setsid /usr/bin/python3 -c 'import time; b = bytearray(64 << 20); b[::4096] = b"x" * len(b[::4096]); time.sleep(3600)' </dev/null >/dev/null 2>&1 &
echo $! > "$ESCAPE_DIR/child.$BATON_WORKER.$BATON_GENERATION"
exec HELLO
`

// escapees lists the setsid children the workers started, by file.
func escapees(t *testing.T, dir string) map[string]int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "child.*"))
	out := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s: %q", f, b)
		}
		out[filepath.Base(f)] = pid
	}
	return out
}

type memStatus struct {
	Pool []struct {
		PID        int    `json:"pid"`
		Generation int    `json:"generation"`
		RSS        *int64 `json:"resident_memory_bytes"`
	} `json:"pool"`
}

// Whatever a worker forks, setsid() or not, is killed with it on a reload
// and a stop, and counted in its memory: with Delegate=yes each worker has
// a cgroup of its own; without, its session, process tree and an
// inherited marker stand in.
func TestEscapedChildrenDieWithTheirWorker(t *testing.T) {
	for _, delegate := range []bool{true, false} {
		t.Run(fmt.Sprintf("delegate=%v", delegate), func(t *testing.T) {
			name := "contain-nodelegate"
			extra := ""
			if delegate {
				name, extra = "contain-delegate", "Delegate=yes\n"
			}
			dir := filepath.Join(workDir, name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			script := filepath.Join(dir, "worker.sh")
			if err := os.WriteFile(script, []byte(strings.ReplaceAll(escapeWorker, "HELLO", helloBin)), 0o755); err != nil {
				t.Fatal(err)
			}
			r := newReloadServiceWith(t, name, fmt.Sprintf("command = [%q]\nworkers = 2\nsurge = 2\nsettle-time = \"500ms\"\n\n[environment]\nESCAPE_DIR = %q\n", script, dir), extra)
			r.waitFor("both escapees started", 30*time.Second, func() bool { return len(escapees(t, dir)) == 2 })
			first := escapees(t, dir)
			for _, pid := range first {
				if !procfs.Alive(pid) {
					t.Fatalf("escapee %d is not running", pid)
				}
			}
			mainPID, _ := strconv.Atoi(r.show("MainPID"))
			says := "containing workers by sessions and a subreaper only"
			if delegate {
				says = "containing each worker in a cgroup of its own"
				// Each worker and its escapee share a cgroup of their own,
				// below the service's and beside baton's leaf.
				for _, pid := range first {
					cg := cgroupOf(t, pid)
					if !strings.Contains(cg, "/"+name+".service/worker-") {
						t.Errorf("escapee %d is in %s, not a worker's cgroup", pid, cg)
					}
				}
				if cg := cgroupOf(t, mainPID); !strings.HasSuffix(cg, "/"+name+".service/supervisor") {
					t.Errorf("baton is in %s, not its leaf", cg)
				}
			}
			// The memory baton reports for a worker includes its escapee's
			// 64 MiB.
			r.waitFor("memory with children counted", 30*time.Second, func() bool {
				out, err := exec.Command(batonBin, "status", "--json", "--control", filepath.Join(mgr.RuntimeDir, name, "control.sock")).Output()
				if err != nil {
					return false
				}
				var st memStatus
				if json.Unmarshal(out, &st) != nil || len(st.Pool) != 2 {
					return false
				}
				for _, w := range st.Pool {
					if w.RSS == nil || *w.RSS < 64<<20 {
						return false
					}
				}
				return true
			})
			// A reload replaces both workers: their escapees die with them.
			if _, err := mgr.Systemctl(ctx(t), "reload", name+".service"); err != nil {
				t.Fatal(err)
			}
			r.waitFor("the old generation's escapees gone", 30*time.Second, func() bool {
				for _, pid := range first {
					if procfs.Alive(pid) {
						return false
					}
				}
				return true
			})
			second := escapees(t, dir)
			if len(second) != 4 {
				t.Fatalf("escapees %v", second)
			}
			// Stopping the service leaves nothing behind (newService's
			// cleanup checks the unit's tasks too).
			r.systemctl("stop", name+".service")
			for f, pid := range second {
				if !testutil.Eventually(t, 20*time.Second, func() bool { return !procfs.Alive(pid) }) {
					t.Errorf("%s (pid %d) outlived the stop", f, pid)
				}
			}
			if !strings.Contains(r.readLog(), says) {
				t.Errorf("the log does not say %q", says)
			}
		})
	}
}

// cgroupOf is pid's cgroup in the unified hierarchy.
func cgroupOf(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "0::") {
			return strings.TrimPrefix(l, "0::")
		}
	}
	return ""
}
