package packaging

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/bench/load"
)

// rootCache is where the Debian roots are kept between runs on a machine,
// one directory per release; a test builds one with debootstrap (once per
// machine) when it is absent.
const rootCache = "/var/cache/baton-test"

// Releases the booted tests run on: Debian 12 has systemd 252, Debian 13
// systemd 257 (Type=notify-reload, since 253).
const (
	bookworm = "bookworm"
	trixie   = "trixie"
)

var releases = []string{bookworm, trixie}

func init() {
	// Re-executed inside the container's network namespace as the load
	// generator: BATON_PKG_LOAD=URL. It prints "progress OK FAILED" as
	// requests complete, and its outcome as JSON when its stdin closes.
	if url := os.Getenv("BATON_PKG_LOAD"); url != "" {
		os.Exit(loadMain(url))
	}
}

// loadOutcome is what the in-namespace load reports when it stops.
type loadOutcome struct {
	OK, Failed int
	Summary    string
	Failures   []string
}

func loadMain(url string) int {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	l, err := load.Start(ctx, load.Options{URL: url, Clients: 8})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last int64 = -1
	for ctx.Err() == nil {
		if ok, failed := l.OK(), l.Failed(); ok+failed != last {
			fmt.Printf("progress %d %d\n", ok, failed)
			last = ok + failed
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	r := l.Wait()
	s := r.Summary()
	out := loadOutcome{OK: s.OK, Failed: s.Failed, Summary: s.String()}
	for i, x := range r.Failures() {
		if i == 20 {
			out.Failures = append(out.Failures, fmt.Sprintf("... and %d more", s.Failed-i))
			break
		}
		out.Failures = append(out.Failures, x.String())
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// ensureRoot returns the cached root of release, building it first if
// need be. A lock keeps two test runs on one machine from building the
// same root at once.
func ensureRoot(t *testing.T, release string) string {
	t.Helper()
	root := filepath.Join(rootCache, release)
	if err := os.MkdirAll(rootCache, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(root+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(root, "usr/lib/systemd/systemd")); err == nil {
		return root
	}
	t.Logf("building the Debian %s root in %s with debootstrap (once per machine)", release, root)
	tmp := root + ".tmp"
	os.RemoveAll(tmp)
	out, err := exec.Command("debootstrap", "--variant=minbase", "--include=systemd,systemd-sysv,dbus", release, tmp, "http://deb.debian.org/debian").CombinedOutput()
	if err != nil {
		t.Fatalf("debootstrap %s: %v\n%s", release, err, out)
	}
	if err := os.Rename(tmp, root); err != nil {
		t.Fatal(err)
	}
	return root
}

// container is a booted Debian with systemd as PID 1.
type container struct {
	t    *testing.T
	root string
	cmd  *exec.Cmd
	pid1 int
}

func boot(t *testing.T, release string) *container {
	t.Helper()
	cache := ensureRoot(t, release)
	root, err := os.MkdirTemp("/var/tmp", "baton-ct-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", cache+"/.", root).CombinedOutput(); err != nil {
		t.Fatalf("copy root: %v\n%s", err, out)
	}
	c := &container{t: t, root: root}
	c.cmd = exec.Command("systemd-nspawn", "-D", root, "--boot", "--register=no", "--keep-unit", "--private-network", "--console=passive")
	log := filepath.Join(root, "nspawn.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stdout, c.cmd.Stderr = f, f
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(c.stop)
	deadline := time.Now().Add(30 * time.Second)
	// nspawn's child becomes the container's systemd once set up; before
	// that, its namespaces are not the container's yet.
	for c.pid1 == 0 && time.Now().Before(deadline) {
		if p := childOf(c.cmd.Process.Pid); p != 0 {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.TrimSpace(string(comm)) == "systemd" {
				c.pid1 = p
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c.pid1 == 0 {
		b, _ := os.ReadFile(log)
		t.Fatalf("the container did not start:\n%s", b)
	}
	// Until systemd has opened its control socket, systemctl cannot
	// connect at all; then --wait waits for the boot to finish.
	var st string
	for time.Now().Before(deadline.Add(30 * time.Second)) {
		out, _ := c.run("timeout", "30", "systemctl", "is-system-running", "--wait")
		if st = strings.TrimSpace(out); st == "running" || st == "degraded" {
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("container state %q", st)
	return nil
}

func childOf(pid int) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			return p
		}
	}
	return 0
}

// run runs a command inside the container (all its namespaces).
func (c *container) run(args ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.pid1), "-a"}, args...)...).CombinedOutput()
	return string(out), err
}

func (c *container) must(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return out
}

// loadRun is the load generator running inside the container's network.
type loadRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	ok     atomic.Int64
	failed atomic.Int64
	result chan string
}

// startLoad drives url inside the container's network until finish.
func (c *container) startLoad(url string) *loadRun {
	c.t.Helper()
	cmd := exec.Command("nsenter", "-t", strconv.Itoa(c.pid1), "-n", os.Args[0])
	cmd.Env = append(os.Environ(), "BATON_PKG_LOAD="+url)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	l := &loadRun{t: c.t, cmd: cmd, stdin: stdin, result: make(chan string, 1)}
	go func() {
		var last string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			last = sc.Text()
			var ok, failed int64
			if _, err := fmt.Sscanf(last, "progress %d %d", &ok, &failed); err == nil {
				l.ok.Store(ok)
				l.failed.Store(failed)
			}
		}
		l.result <- last
	}()
	return l
}

// served waits until n more requests have succeeded.
func (l *loadRun) served(n int64) {
	l.t.Helper()
	target := l.ok.Load() + n
	deadline := time.Now().Add(60 * time.Second)
	for l.ok.Load() < target {
		if time.Now().After(deadline) {
			l.t.Fatalf("the load stalled at %d requests, %d failed", l.ok.Load(), l.failed.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// finish stops the load and returns its outcome.
func (l *loadRun) finish() loadOutcome {
	l.t.Helper()
	l.stdin.Close()
	line := <-l.result
	if err := l.cmd.Wait(); err != nil {
		l.t.Fatalf("load: %v", err)
	}
	var r loadOutcome
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		l.t.Fatalf("load output %q: %v", line, err)
	}
	return r
}

// String is the outcome for a failure message: the summary, then each
// failed request.
func (r loadOutcome) String() string {
	return strings.Join(append([]string{r.Summary}, r.Failures...), "\n")
}

func (c *container) stop() {
	_, _ = c.run("systemctl", "poweroff")
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	os.RemoveAll(c.root)
}

func (c *container) copyIn(src, dst string, mode os.FileMode) {
	c.t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Join(c.root, dst)), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.root, dst), b, mode); err != nil {
		c.t.Fatal(err)
	}
}

// buildHello builds the example worker, static, for the containers.
func buildHello(t *testing.T) string {
	t.Helper()
	hello := filepath.Join(t.TempDir(), "hello")
	build := exec.Command("go", "build", "-o", hello, "./examples/hello")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build hello: %v\n%s", err, out)
	}
	return hello
}

// The .deb on a real Debian 12 and 13 with systemd as PID 1: install, run
// an instance of the shipped, fully sandboxed units, upgrade under load
// (the postinst's reload executes the new baton in place), remove and
// purge.
func TestDebInBootedDebian(t *testing.T) {
	cmd := exec.Command("./packaging/build")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "VERSION=0.2.0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build 0.2.0: %v\n%s", err, out)
	}
	hello := buildHello(t)
	for _, release := range releases {
		t.Run(release, func(t *testing.T) { debLifecycle(t, release, hello) })
	}
}

func debLifecycle(t *testing.T, release, hello string) {
	c := boot(t, release)
	c.copyIn(deb, "/root/baton_0.1.0.deb", 0o644)
	c.copyIn(filepath.Join("..", "dist", "baton_0.2.0-1_amd64.deb"), "/root/baton_0.2.0.deb", 0o644)
	c.copyIn(hello, "/usr/local/bin/hello", 0o755)

	c.must("dpkg", "-i", "/root/baton_0.1.0.deb")
	if out, _ := c.run("systemctl", "list-units", "--all", "--no-legend", "baton@*"); strings.TrimSpace(out) != "" {
		t.Errorf("installing enabled or started an instance:\n%s", out)
	}
	// web comes from the socket unit; admin is bound by baton itself and
	// kept in systemd's fd store, under the full sandbox.
	c.must("sh", "-c", `printf 'command = ["/usr/local/bin/hello"]\nworkers = 2\n\n[sockets.admin]\nlisten = "tcp://127.0.0.1:8081"\n' > /etc/baton/demo.toml &&
		mkdir -p /etc/systemd/system/baton@demo.socket.d &&
		printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:8080\n' > /etc/systemd/system/baton@demo.socket.d/listen.conf &&
		systemctl daemon-reload && systemctl enable --now baton@demo.socket`)
	url := "http://127.0.0.1:8080/"
	l := c.startLoad(url)
	l.served(500)
	if r := l.finish(); r.OK == 0 || r.Failed > 0 {
		t.Fatalf("serving: %s\n%s", r, c.must("systemctl", "status", "baton@demo.service", "--no-pager"))
	}
	if n := strings.TrimSpace(c.must("systemctl", "show", "-p", "NFileDescriptorStore", "--value", "baton@demo.service")); n != "1" {
		t.Errorf("NFileDescriptorStore=%s, want the admin socket there", n)
	}
	// A restart under load on the stored socket refuses nothing.
	l = c.startLoad("http://127.0.0.1:8081/")
	l.served(1000)
	c.must("systemctl", "restart", "baton@demo.service")
	l.served(1000)
	if r := l.finish(); r.Failed > 0 {
		t.Errorf("restart with the fd store: %s", r)
	}
	pid := strings.TrimSpace(c.must("systemctl", "show", "-p", "MainPID", "--value", "baton@demo.service"))
	if st := strings.TrimSpace(c.must("systemctl", "show", "-p", "StatusText", "--value", "baton@demo.service")); st != "2/2 workers ready, generation 1" {
		t.Errorf("status %q", st)
	}

	// Upgrade under load: the postinst reloads the instance, which
	// executes the new baton in place.
	l = c.startLoad(url)
	l.served(2000)
	c.must("dpkg", "-i", "/root/baton_0.2.0.deb")
	l.served(2000)
	r := l.finish()
	t.Logf("upgrade under load: %s", r.Summary)
	if r.Failed > 0 {
		t.Errorf("upgrade under load: %s", r)
	}
	if now := strings.TrimSpace(c.must("systemctl", "show", "-p", "MainPID", "--value", "baton@demo.service")); now != pid {
		t.Errorf("main pid %s became %s: the upgrade restarted baton", pid, now)
	}
	// An admin's shell finds the instance by name, and as the only one.
	for _, args := range [][]string{{"status", "demo"}, {"status"}} {
		if out := c.must(append([]string{"baton"}, args...)...); !strings.Contains(out, "baton 0.2.0") {
			t.Errorf("baton %v: the running baton is not the new one:\n%s", args, out)
		}
	}

	// Remove stops every instance; purge leaves only the admin's own files.
	c.must("dpkg", "-r", "baton")
	for _, u := range []string{"baton@demo.service", "baton@demo.socket"} {
		if st, _ := c.run("systemctl", "is-active", u); strings.TrimSpace(st) == "active" {
			t.Errorf("%s still active after removal", u)
		}
	}
	c.must("dpkg", "-P", "baton")
	for _, gone := range []string{"/usr/bin/baton", "/lib/systemd/system/baton@.service", "/usr/lib/systemd/system/baton@.service", "/etc/baton/example.toml", "/var/lib/private/baton", "/etc/systemd/system/sockets.target.wants/baton@demo.socket"} {
		if _, err := os.Lstat(filepath.Join(c.root, gone)); err == nil {
			t.Errorf("%s is left after purge", gone)
		}
	}
	if _, err := os.Stat(filepath.Join(c.root, "/etc/baton/demo.toml")); err != nil {
		t.Errorf("purge removed the admin's own config: %v", err)
	}
}
