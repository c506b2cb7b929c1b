package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/systemdtest"
	"github.com/batonhq/baton/internal/testutil"
)

var (
	mgr      *systemdtest.Manager
	batonBin string
	helloBin string
	workDir  string
)

func TestMain(m *testing.M) {
	if out := os.Getenv("BATON_E2E_FAKE_JOURNALD"); out != "" {
		os.Exit(fakeJournald(out))
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	// Not under /tmp: the shipped units' PrivateTmp= hides it from the
	// services, which run the binaries built here.
	workDir, err = os.MkdirTemp("/run", "baton-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The shipped unit runs baton as a DynamicUser=, which must reach the
	// binaries and configs built here.
	if err := os.Chmod(workDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)
	batonBin = filepath.Join(workDir, "baton")
	helloBin = filepath.Join(workDir, "hello")
	for bin, pkg := range map[string]string{batonBin: "../cmd/baton", helloBin: "../examples/hello"} {
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mgr, err = systemdtest.Start(ctx, workDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if err := mgr.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop user manager:", err)
		code = 1
	}
	return code
}

// service is one test's units and log.
type service struct {
	t    *testing.T
	name string
	log  string
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// newService writes NAME.service (and NAME.socket when socket is not empty)
// and arranges for both to be stopped, and checked to leave no process
// behind, when the test ends.
func newService(t *testing.T, name, serviceBody, socketBody string) *service {
	t.Helper()
	s := &service{t: t, name: name, log: filepath.Join(workDir, name+".log")}
	if err := os.Remove(s.log); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	unit := fmt.Sprintf("[Unit]\nDescription=baton e2e %s\n\n[Service]\nStandardOutput=append:%s\nStandardError=append:%s\n%s", name, s.log, s.log, serviceBody)
	if err := mgr.WriteUnit(ctx(t), name+".service", unit); err != nil {
		t.Fatal(err)
	}
	if socketBody != "" {
		if err := mgr.WriteUnit(ctx(t), name+".socket", "[Socket]\n"+socketBody); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		units := []string{name + ".service"}
		if socketBody != "" {
			units = append(units, name+".socket")
		}
		if _, err := mgr.Systemctl(c, append([]string{"stop"}, units...)...); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		_, _ = mgr.Systemctl(c, "reset-failed", name+".service")
		// No process of the service survives its stop.
		cg, _ := mgr.Show(c, name+".service", "ControlGroup")
		if cg != "" {
			if !testutil.Eventually(t, 10*time.Second, func() bool {
				n, _ := mgr.Show(c, name+".service", "NTasks")
				return n == "0" || n == "[not set]" || n == ""
			}) {
				n, _ := mgr.Show(c, name+".service", "NTasks")
				t.Errorf("%s still has %s tasks after stop", name, n)
			}
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, s.readLog())
		}
	})
	return s
}

func (s *service) readLog() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

func (s *service) systemctl(args ...string) string {
	s.t.Helper()
	out, err := mgr.Systemctl(ctx(s.t), args...)
	if err != nil {
		s.t.Fatalf("%v\n%s log:\n%s", err, s.name, s.readLog())
	}
	return out
}

func (s *service) show(prop string) string {
	s.t.Helper()
	v, err := mgr.Show(ctx(s.t), s.name+".service", prop)
	if err != nil {
		s.t.Fatal(err)
	}
	return v
}

// waitFor polls cond with a deadline; the failure message names what.
func (s *service) waitFor(what string, within time.Duration, cond func() bool) {
	s.t.Helper()
	if !testutil.Eventually(s.t, within, cond) {
		s.t.Fatalf("timed out after %s waiting for %s\nstatus: %s\nlog:\n%s", within, what, s.show("StatusText"), s.readLog())
	}
}

// freePort finds a port on 127.0.0.1 that is free now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// client makes a fresh connection per request, so that requests spread
// over workers as new connections do.
var client = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// pidOf extracts "pid N" from the example's answer.
func pidOf(body string) string {
	f := strings.Fields(body)
	for i := range f {
		if f[i] == "pid" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}
