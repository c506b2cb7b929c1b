package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/procfs"
)

// reloadService is a socket-activated baton whose config file the test
// rewrites, with ExecReload= through baton reload --wait.
type reloadService struct {
	*service
	config string
	port   int
}

func newReloadService(t *testing.T, name, config string) *reloadService {
	t.Helper()
	return newReloadServiceWith(t, name, config, "")
}

// newReloadServiceWith adds extra lines to the [Service] section.
func newReloadServiceWith(t *testing.T, name, config, extra string) *reloadService {
	t.Helper()
	port := freePort(t)
	path := filepath.Join(workDir, name+".toml")
	r := &reloadService{config: path, port: port}
	r.writeConfig(t, config)
	r.service = newService(t, name,
		fmt.Sprintf("Type=notify\nNotifyAccess=main\nKillMode=mixed\nRuntimeDirectory=%s\nExecStart=%s run -c %s\nExecReload=%s reload --wait\n%s", name, batonBin, path, batonBin, extra),
		fmt.Sprintf("ListenStream=127.0.0.1:%d\nFileDescriptorName=web\n", port))
	r.systemctl("start", name+".socket", name+".service")
	return r
}

func (r *reloadService) writeConfig(t *testing.T, body string) {
	t.Helper()
	body = strings.ReplaceAll(body, "HELLO", helloBin)
	if err := os.WriteFile(r.config, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (r *reloadService) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", r.port, path)
}

// workers lists baton's worker pids: its children (exact, where a sample of
// answers could miss one).
func (r *reloadService) workers(t *testing.T) map[string]bool {
	t.Helper()
	pid, err := strconv.Atoi(r.show("MainPID"))
	if err != nil {
		t.Fatal(err)
	}
	kids, err := procfs.Children(pid)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, k := range kids {
		out[strconv.Itoa(k)] = true
	}
	return out
}

// answering collects the worker pids that answer n requests.
func (r *reloadService) answering(t *testing.T, n int) map[string]bool {
	t.Helper()
	pids := map[string]bool{}
	for i := 0; i < n; i++ {
		_, body := get(t, r.url("/"))
		pids[pidOf(body)] = true
	}
	return pids
}

var brokenReloadRE = regexp.MustCompile(`baton: reload failed: reload to generation 2 failed: worker \d of generation 2 \(pid \d+\) exited with status 4 .*before READY=1 \(last output: "cannot start"\); generation 1 keeps serving`)

const helloConfig = `command = ["HELLO"]
workers = 4
surge = 2
graceful-timeout = "10s"
`

func TestThreeReloadsUnderLoadFailNoRequest(t *testing.T) {
	r := newReloadService(t, "reload-three", helloConfig)
	before := r.answering(t, 50)
	l := startLoad(t, r.url("/sleep?ms=20"), 8)
	for i := 2; i <= 4; i++ {
		l.waitServed(200)
		r.systemctl("reload", r.name+".service")
		if st := r.show("StatusText"); st != fmt.Sprintf("4/4 workers ready, generation %d", i) {
			t.Errorf("after reload %d: %q", i-1, st)
		}
	}
	l.waitServed(200)
	t.Logf("during three reloads: %s", l.finish().Summary())
	for pid := range r.answering(t, 50) {
		if before[pid] {
			t.Errorf("pid %s from generation 1 still answers", pid)
		}
	}
	if log := r.readLog(); strings.Count(log, "reload done") != 3 {
		t.Errorf("log:\n%s", log)
	}
}

func TestReloadToBrokenCommandFailsAndKeepsServing(t *testing.T) {
	r := newReloadService(t, "reload-broken", helloConfig)
	before := r.workers(t)
	l := startLoad(t, r.url("/"), 4)
	l.waitServed(100)
	r.writeConfig(t, strings.Replace(helloConfig, `["HELLO"]`, `["/bin/sh", "-c", "echo cannot start; exit 4"]`, 1))
	out, err := mgr.Systemctl(ctx(t), "reload", r.name+".service")
	if err == nil {
		t.Fatalf("systemctl reload succeeded for a broken command: %s", out)
	}
	l.finish()
	log := r.readLog()
	// The worker, its exit and its last words, in the log and for
	// systemctl reload (whose ExecReload= output lands in the same log).
	if !brokenReloadRE.MatchString(log) {
		t.Errorf("the reason is not in the log:\n%s", log)
	}
	for pid := range r.answering(t, 50) {
		if !before[pid] {
			t.Errorf("pid %s is not one of the old workers %v", pid, before)
		}
	}
	if st := r.show("StatusText"); !strings.HasPrefix(st, "4/4 workers ready, generation 1, last reload failed") {
		t.Errorf("status %q", st)
	}
	if st := r.show("ActiveState"); st != "active" {
		t.Errorf("state %s", st)
	}
}

func TestReloadWithInvalidConfigChangesNothing(t *testing.T) {
	r := newReloadService(t, "reload-invalid", helloConfig)
	before := r.workers(t)
	r.writeConfig(t, helloConfig+"workerz = 3\n")
	if _, err := mgr.Systemctl(ctx(t), "reload", r.name+".service"); err == nil {
		t.Fatal("systemctl reload succeeded with an invalid config")
	}
	want := fmt.Sprintf("%s:5:1: workerz: unknown key", r.config)
	if log := r.readLog(); !strings.Contains(log, want) {
		t.Errorf("log lacks %q:\n%s", want, log)
	}
	if strings.Contains(r.readLog(), "rolling generation") {
		t.Errorf("a rollout started")
	}
	for pid := range r.answering(t, 50) {
		if !before[pid] {
			t.Errorf("pid %s is new: something restarted", pid)
		}
	}
}

func TestScaleUnderLoadFailsNoRequest(t *testing.T) {
	r := newReloadService(t, "reload-scale", helloConfig)
	l := startLoad(t, r.url("/sleep?ms=10"), 8)
	signal := func(sig string) {
		l.waitServed(100)
		r.systemctl("kill", "--kill-whom=main", "-s", sig, r.name+".service")
	}
	signal("SIGTTIN")
	r.waitFor("5 workers", 20*time.Second, func() bool { return r.show("StatusText") == "5/5 workers ready, generation 1" })
	signal("SIGTTOU")
	r.waitFor("4 workers", 20*time.Second, func() bool { return r.show("StatusText") == "4/4 workers ready, generation 1" })
	signal("SIGTTOU")
	r.waitFor("3 workers", 20*time.Second, func() bool { return r.show("StatusText") == "3/3 workers ready, generation 1" })
	// A changed worker count in the config, with a reload.
	r.writeConfig(t, strings.Replace(helloConfig, "workers = 4", "workers = 6", 1))
	r.systemctl("reload", r.name+".service")
	if st := r.show("StatusText"); st != "6/6 workers ready, generation 2" {
		t.Errorf("status %q", st)
	}
	r.writeConfig(t, strings.Replace(helloConfig, "workers = 4", "workers = 2", 1))
	r.systemctl("reload", r.name+".service")
	r.waitFor("2 workers", 20*time.Second, func() bool { return r.show("StatusText") == "2/2 workers ready, generation 3" })
	l.finish()
	r.waitFor("the drained workers to exit", 20*time.Second, func() bool {
		procs, err := mgr.UnitProcs(ctx(t), r.name+".service")
		return err == nil && len(procs) == 3 // baton and 2 workers
	})
}

func TestRecyclingByLifetimeUnderLoadFailsNoRequest(t *testing.T) {
	r := newReloadService(t, "reload-recycle", helloConfig+"max-lifetime = \"1s\"\n")
	l := startLoad(t, r.url("/sleep?ms=5"), 8)
	r.waitFor("8 recycled workers", 60*time.Second, func() bool {
		return strings.Count(r.readLog(), "recycled: max-lifetime 1s reached") >= 8 || l.Failed() > 0
	})
	l.waitServed(100)
	t.Logf("while 8 workers recycled: %s", l.finish().Summary())
	if st := r.show("StatusText"); st != "4/4 workers ready, generation 1" {
		t.Errorf("status %q", st)
	}
}

// A socket added to the config opens in the reload; a removed one closes
// once the workers that had it drained.
func TestReloadAddsAndRemovesSockets(t *testing.T) {
	admin := freePort(t)
	base := helloConfig + "[sockets.web]\nlisten = \"tcp://127.0.0.1:1\"\n"
	r := newReloadService(t, "reload-sockets", base)
	// web comes from the .socket unit (matched by name); the config's
	// address for it is ignored, as the log says.
	if code, _ := get(t, r.url("/")); code != 200 {
		t.Fatal(code)
	}
	adminURL := fmt.Sprintf("http://127.0.0.1:%d/", admin)
	r.writeConfig(t, base+fmt.Sprintf("[sockets.admin]\nlisten = \"tcp://127.0.0.1:%d\"\n", admin))
	r.systemctl("reload", r.name+".service")
	if code, body := get(t, adminURL); code != 200 || !strings.Contains(body, "generation 2") {
		t.Fatalf("admin socket after reload: %d %q", code, body)
	}
	r.writeConfig(t, base)
	r.systemctl("reload", r.name+".service")
	r.waitFor("the admin socket to close", 20*time.Second, func() bool {
		_, err := client.Get(adminURL)
		return err != nil && strings.Contains(r.readLog(), "closing socket admin")
	})
	if code, body := get(t, r.url("/")); code != 200 || !strings.Contains(body, "generation 3") {
		t.Errorf("web after removing admin: %d %q", code, body)
	}
}
