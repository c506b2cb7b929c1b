package contain

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/batonhq/baton/internal/testutil"
	"github.com/sirupsen/logrus"
)

// fakeRoot is a delegated cgroup made of plain files, offering controllers:
// what this hybrid host cannot show for real.
func fakeRoot(t *testing.T, controllers string) (*cgroupStrategy, string) {
	t.Helper()
	root := t.TempDir()
	for name, body := range map[string]string{"cgroup.procs": "", "cgroup.controllers": controllers + "\n", "cgroup.subtree_control": "\n"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := newCgroupStrategy(root, logrus.New(), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, root
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFakeLimitsEnableControllersAndWrite(t *testing.T) {
	testutil.CheckFDLeaks(t)
	s, root := fakeRoot(t, "cpuset cpu io memory pids")
	if got := read(t, filepath.Join(root, leafName, "cgroup.procs")); got != strconv.Itoa(os.Getpid()) {
		t.Errorf("baton moved %q into its leaf, want its pid", got)
	}
	l := Limits{MemoryMax: 256 << 20, CPUWeight: 200}
	if err := s.Prepare(l); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(root, "cgroup.subtree_control")); got != "+cpu +memory" {
		t.Errorf("subtree_control = %q, want both controllers in one write", got)
	}
	// Enabled once: a second Prepare writes nothing.
	if err := os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("cpu memory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Prepare(l); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(root, "cgroup.subtree_control")); got != "cpu memory\n" {
		t.Errorf("second Prepare rewrote subtree_control: %q", got)
	}
	c, err := s.New("3.2.9", l)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "worker-3.2.9")
	if got := read(t, filepath.Join(dir, "memory.max")); got != "268435456" {
		t.Errorf("memory.max = %q", got)
	}
	if got := read(t, filepath.Join(dir, "cpu.weight")); got != "200" {
		t.Errorf("cpu.weight = %q", got)
	}
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "cgroup.kill")); got != "1" {
		t.Errorf("cgroup.kill = %q", got)
	}
	// memory.current less the inactive file cache.
	for name, body := range map[string]string{"memory.current": "300000000\n", "memory.stat": "anon 200000000\nfile 100000000\ninactive_file 40000000\nactive_file 60000000\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := c.Memory(); err != nil || m != 260000000 {
		t.Errorf("Memory() = %d, %v; want 260000000", m, err)
	}
	// A worker with lower limits in the same pool gets its own.
	c2, err := s.New("3.2.10", Limits{CPUWeight: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "worker-3.2.10", "memory.max")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("memory.max written without memory-max: %v", err)
	}
	for _, cell := range []Cell{c, c2} {
		if err := os.WriteFile(filepath.Join(root, "worker-"+cell.ID(), "cgroup.events"), []byte("populated 0\nfrozen 0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := cell.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left %s: %v", dir, err)
	}
}

func TestFakeNoControllerNamesTheSetting(t *testing.T) {
	testutil.CheckFDLeaks(t)
	s, root := fakeRoot(t, "pids")
	l := Limits{MemoryMax: 1 << 30, CPUWeight: 500}
	err := s.Prepare(l)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Prepare = %v, want ErrUnsupported", err)
	}
	for _, want := range []string{
		"memory-max: cannot be enforced here: the memory controller is not available in " + root,
		"cpu-weight: cannot be enforced here: the cpu controller is not available in " + root,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Prepare error %q\nwant it to contain %q", err, want)
		}
	}
	if got := read(t, filepath.Join(root, "cgroup.subtree_control")); got != "\n" {
		t.Errorf("subtree_control written: %q", got)
	}
	c, err := s.New("w", l)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"memory.max", "cpu.weight"} {
		if _, err := os.Stat(filepath.Join(root, "worker-w", f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s written without its controller: %v", f, err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "worker-w", "cgroup.events"), []byte("populated 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestMountinfoPaths(t *testing.T) {
	if got := unescape(`/sys/fs/cgroup/a\040b\134c`); got != `/sys/fs/cgroup/a b\c` {
		t.Errorf("unescape: %q", got)
	}
	ms := []mount{
		{point: "/sys/fs/cgroup/memory", root: "/", fs: "cgroup", opts: []string{"rw", "memory"}},
		{point: "/sys/fs/cgroup/unified", root: "/", fs: "cgroup2"},
	}
	m, ok := unified(ms)
	if !ok || m.point != "/sys/fs/cgroup/unified" {
		t.Fatalf("unified = %+v, %v", m, ok)
	}
	if !v1Controller(ms, "memory") || v1Controller(ms, "cpu") {
		t.Error("v1Controller")
	}
	if d, ok := dirOf(m, "/system.slice/x.service"); !ok || d != "/sys/fs/cgroup/unified/system.slice/x.service" {
		t.Errorf("dirOf = %q, %v", d, ok)
	}
	if p, ok := pathOf(ms, "/sys/fs/cgroup/unified/system.slice/x.service"); !ok || p != "/system.slice/x.service" {
		t.Errorf("pathOf = %q, %v", p, ok)
	}
	if _, ok := pathOf(ms, "/tmp/x"); ok {
		t.Error("pathOf accepted a directory outside the mount")
	}
	// A container that sees only its own subtree (bind-mounted).
	sub := mount{point: "/sys/fs/cgroup", root: "/machine.slice/c1", fs: "cgroup2"}
	if d, ok := dirOf(sub, "/machine.slice/c1/app.service"); !ok || d != "/sys/fs/cgroup/app.service" {
		t.Errorf("dirOf below a bind mount = %q, %v", d, ok)
	}
	if p, ok := pathOf([]mount{sub}, "/sys/fs/cgroup/app.service"); !ok || p != "/machine.slice/c1/app.service" {
		t.Errorf("pathOf below a bind mount = %q, %v", p, ok)
	}
	if !kernelAtLeast(3, 0) || kernelAtLeast(1000, 0) {
		t.Error("kernelAtLeast")
	}
}
