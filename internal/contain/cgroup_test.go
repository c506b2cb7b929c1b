package contain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/procfs"
	"github.com/batonhq/baton/internal/testutil"
	"github.com/sirupsen/logrus"
)

var rootSeq atomic.Int64

// testRoot makes a private cgroup below the real cgroup2 hierarchy (the
// unified part of a hybrid one) and, at cleanup, moves this process back
// where it was, kills what is left and removes it all.
func testRoot(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root to make cgroups (the development machines and CI run as root)")
	}
	ms, err := mounts()
	if err != nil {
		t.Fatal(err)
	}
	m, ok := unified(ms)
	if !ok {
		t.Fatal("no cgroup2 hierarchy is mounted")
	}
	orig, err := cgroupOf(0)
	if err != nil {
		t.Fatal(err)
	}
	origDir, ok := dirOf(m, orig)
	if !ok {
		t.Fatalf("own cgroup %s is outside %s", orig, m.point)
	}
	root := filepath.Join(m.point, fmt.Sprintf("baton-contain-test-%d-%d", os.Getpid(), rootSeq.Add(1)))
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := writeFile(filepath.Join(origDir, "cgroup.procs"), strconv.Itoa(os.Getpid()), false); err != nil {
			t.Errorf("move back to %s: %v", origDir, err)
			return
		}
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if e.IsDir() && strings.HasPrefix(e.Name(), workerPrefix) {
				dir := filepath.Join(root, e.Name())
				t.Errorf("cgroup %s left behind", dir)
				_ = writeFile(filepath.Join(dir, "cgroup.kill"), "1", false)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_ = waitEmpty(ctx, dir)
				cancel()
			}
		}
		if err := removeTree(root); err != nil {
			t.Errorf("remove test cgroups: %v", err)
		}
	})
	return root
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// setupCgroup runs Setup on a fresh test root.
func setupCgroup(t *testing.T) (*cgroupStrategy, string) {
	t.Helper()
	root := testRoot(t)
	st, err := Setup(ctxT(t), Options{Root: root, Log: logrus.New()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return st.(*cgroupStrategy), root
}

// stop kills a worker left running by a failed test.
func (w *worker) stop(c Cell) {
	if w.cmd.ProcessState == nil {
		_ = c.Kill()
		_ = w.cmd.Wait()
	}
}

func sid(t *testing.T, pid int) int {
	t.Helper()
	st, err := procfs.ReadStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st.SID
}

func TestCgroupKillsSetsidGrandchild(t *testing.T) {
	testutil.CheckChildLeaks(t)
	testutil.CheckFDLeaks(t)
	s, root := setupCgroup(t)
	testCgroupKill(t, s, root)
}

func TestCgroupKillWithoutCgroupKillFreezes(t *testing.T) {
	testutil.CheckChildLeaks(t)
	testutil.CheckFDLeaks(t)
	s, root := setupCgroup(t)
	s.noKill = true
	testCgroupKill(t, s, root)
}

func testCgroupKill(t *testing.T, s *cgroupStrategy, root string) {
	if s.Kind() != KindCgroup {
		t.Errorf("Kind %q", s.Kind())
	}
	if cg, _ := cgroupOf(0); cg != s.path+"/"+leafName {
		t.Errorf("baton is in %s, want its leaf %s/%s", cg, s.path, leafName)
	}
	c, err := s.New("1.1.1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := spawn(c, "stay", 64)
	if err != nil {
		t.Fatal(err)
	}
	defer w.stop(c)
	pid := w.cmd.Process.Pid
	want := s.path + "/" + workerPrefix + "1.1.1"
	for _, p := range []int{pid, w.gc} {
		if cg, err := cgroupOf(p); err != nil || cg != want {
			t.Errorf("pid %d in cgroup %q (%v), want %s", p, cg, err, want)
		}
	}
	if sid(t, pid) != pid || sid(t, w.gc) != w.gc {
		t.Errorf("sessions: worker %d leads %d, grandchild %d leads %d; want each its own", pid, sid(t, pid), w.gc, sid(t, w.gc))
	}
	if id, ok := s.Owner(w.gc); !ok || id != "1.1.1" {
		t.Errorf("Owner(grandchild) = %q, %v", id, ok)
	}
	if id, ok := s.Owner(os.Getpid()); ok {
		t.Errorf("Owner(baton) = %q", id)
	}
	own, _ := procfs.RSS(pid)
	mem, err := c.Memory()
	if err != nil || mem < 64<<20 || own >= 64<<20 {
		t.Errorf("Memory() = %dMiB, %v; want the grandchild's 64MiB counted (the worker alone has %dMiB)", mem>>20, err, own>>20)
	}
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Wait(); !killedBy(w.cmd.ProcessState) {
		t.Errorf("worker: %v, want killed by SIGKILL", err)
	}
	if !eventually(10*time.Second, func() bool { return !procfs.Alive(w.gc) }) {
		t.Errorf("grandchild %d survived its worker's Kill", w.gc)
	}
	if err := c.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, workerPrefix+"1.1.1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cgroup still there after Close: %v", err)
	}
	if _, ok := s.Owner(os.Getpid()); ok {
		t.Error("closed cell still owns")
	}
}

// An exec-in-place upgrade runs Setup again in the same process: it keeps
// the workers' cgroups; Adopt takes over the ones handed over and Sweep
// removes the rest.
func TestCgroupSetupAgainAdoptsAndSweeps(t *testing.T) {
	testutil.CheckChildLeaks(t)
	testutil.CheckFDLeaks(t)
	s, root := setupCgroup(t)
	var ws []*worker
	for _, id := range []string{"kept", "lost"} {
		c, err := s.New(id, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		w, err := spawn(c, "stay", 1)
		if err != nil {
			t.Fatal(err)
		}
		defer w.stop(c)
		ws = append(ws, w)
	}
	st2, err := Setup(ctxT(t), Options{Root: root, Log: logrus.New()})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	kept, err := st2.Adopt("kept", ws[0].cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	swept, err := st2.Sweep(ctxT(t))
	if err != nil || !slices.Equal(swept, []string{"lost"}) {
		t.Errorf("Sweep = %v, %v; want [lost]", swept, err)
	}
	if err := ws[1].cmd.Wait(); !killedBy(ws[1].cmd.ProcessState) {
		t.Errorf("swept worker: %v, want killed", err)
	}
	if !eventually(10*time.Second, func() bool { return !procfs.Alive(ws[1].gc) }) {
		t.Error("swept worker's grandchild survived")
	}
	if _, err := os.Stat(filepath.Join(root, workerPrefix+"lost")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("swept cgroup still there: %v", err)
	}
	if id, ok := st2.Owner(ws[0].gc); !ok || id != "kept" {
		t.Errorf("adopted Owner(grandchild) = %q, %v", id, ok)
	}
	if !procfs.Alive(ws[0].cmd.Process.Pid) || !procfs.Alive(ws[0].gc) {
		t.Fatal("Sweep killed an adopted worker")
	}
	if err := kept.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = ws[0].cmd.Wait()
	if err := kept.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// The first strategy's cells still hold fds; its Close releases them.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// A worker started by a baton without cgroups is moved into its cgroup,
// grandchild included, when a baton with cgroups adopts it.
func TestCgroupAdoptMovesUncontainedWorker(t *testing.T) {
	testutil.CheckChildLeaks(t)
	testutil.CheckFDLeaks(t)
	s, _ := setupCgroup(t)
	ss := &sessionStrategy{self: os.Getpid(), cells: map[string]*sessionCell{}, byPID: map[int]*sessionCell{}}
	old, _ := ss.New("legacy", Limits{})
	w, err := spawn(old, "stay", 1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Adopt("legacy", w.cmd.Process.Pid)
	if err != nil {
		w.stop(old)
		t.Fatal(err)
	}
	defer w.stop(c)
	want := s.path + "/" + workerPrefix + "legacy"
	for _, p := range []int{w.cmd.Process.Pid, w.gc} {
		if cg, _ := cgroupOf(p); cg != want {
			t.Errorf("pid %d in %s after Adopt, want %s", p, cg, want)
		}
	}
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = w.cmd.Wait()
	if !eventually(10*time.Second, func() bool { return !procfs.Alive(w.gc) }) {
		t.Error("adopted worker's grandchild survived Kill")
	}
	if err := c.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// Limits on the real hierarchy: enforced where the controllers are there
// (a unified host), refused by name where they are not (this hybrid host).
func TestCgroupLimitsOnThisHost(t *testing.T) {
	testutil.CheckFDLeaks(t)
	s, root := setupCgroup(t)
	b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		t.Fatal(err)
	}
	avail := strings.Fields(string(b))
	l := Limits{MemoryMax: 256 << 20, CPUWeight: 200}
	perr := s.Prepare(l)
	c, err := s.New("lim", l)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctxT(t))
	dir := filepath.Join(root, workerPrefix+"lim")
	for _, tc := range []struct{ controller, setting, file, want string }{
		{"memory", "memory-max", "memory.max", "268435456"},
		{"cpu", "cpu-weight", "cpu.weight", "200"},
	} {
		if slices.Contains(avail, tc.controller) {
			if got, _ := os.ReadFile(filepath.Join(dir, tc.file)); strings.TrimSpace(string(got)) != tc.want {
				t.Errorf("%s = %q, want %s (Prepare: %v)", tc.file, got, tc.want, perr)
			}
			continue
		}
		if !errors.Is(perr, ErrUnsupported) || !strings.Contains(perr.Error(), tc.setting+": cannot be enforced here: the "+tc.controller+" controller is not available in "+root) {
			t.Errorf("Prepare without the %s controller: %v", tc.controller, perr)
		}
		if v1Controller(s.mounts, tc.controller) && !strings.Contains(perr.Error(), "hybrid cgroups") {
			t.Errorf("Prepare on a hybrid host does not say so: %v", perr)
		}
	}
}

func TestSysProcAttr(t *testing.T) {
	testutil.CheckFDLeaks(t)
	s, _ := setupCgroup(t)
	c, err := s.New("attr", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	a := &syscall.SysProcAttr{Setpgid: true}
	c.SysProcAttr(a)
	if !a.Setsid || a.Setpgid || !a.UseCgroupFD || a.CgroupFD != c.(*cgroupCell).fd {
		t.Errorf("cgroup SysProcAttr %+v", a)
	}
	if env := c.Env(); !slices.Equal(env, []string{"BATON_WORKER_ID=attr"}) {
		t.Errorf("Env %v", env)
	}
	if err := c.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	sc := &sessionCell{id: "x"}
	b := &syscall.SysProcAttr{Setpgid: true, UseCgroupFD: true}
	sc.SysProcAttr(b)
	if !b.Setsid || b.Setpgid || b.UseCgroupFD {
		t.Errorf("process-group SysProcAttr %+v", b)
	}
	for _, bad := range []string{"", ".", "..", "a/b", "worker 1", strings.Repeat("x", 65)} {
		if _, err := s.New(bad, Limits{}); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	if _, err := s.New("dup", Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.New("dup", Limits{}); err == nil {
		t.Error("a second New with one id accepted")
	}
	cd, _ := s.Adopt("dup2", os.Getpid())
	if cd != nil {
		t.Error("adopted baton itself")
		_ = cd.Close(ctxT(t))
	}
	if err := s.cells["dup"].Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// Where clone3 cannot put a worker in its cgroup (the shipped unit's
// RestrictNamespaces= refuses clone3), the worker joins it itself: through
// Enter in baton's exec shim, or moved by Started from outside.
func TestCgroupWithoutCloneIntoCgroup(t *testing.T) {
	for _, enter := range []bool{true, false} {
		t.Run(fmt.Sprintf("enter=%v", enter), func(t *testing.T) {
			testutil.CheckChildLeaks(t)
			testutil.CheckFDLeaks(t)
			s, _ := setupCgroup(t)
			s.intoCgroup = false
			c, err := s.New("late", Limits{})
			if err != nil {
				t.Fatal(err)
			}
			a := &syscall.SysProcAttr{}
			c.SysProcAttr(a)
			dir := filepath.Join(s.root, workerPrefix+"late")
			if a.UseCgroupFD || !slices.Contains(c.Env(), EnterEnv+"="+dir) {
				t.Errorf("SysProcAttr %+v, Env %v", a, c.Env())
			}
			want := s.path + "/" + workerPrefix + "late"
			env := []string{}
			if !enter {
				env = append(env, noEnterEnv+"=1", awaitCgroupEnv+"="+want)
			}
			w, err := spawn(c, "stay", 1, env...)
			if err != nil {
				t.Fatal(err)
			}
			defer w.stop(c)
			for _, p := range []int{w.cmd.Process.Pid, w.gc} {
				if cg, _ := cgroupOf(p); cg != want {
					t.Errorf("pid %d in %s, want %s", p, cg, want)
				}
			}
			if err := c.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = w.cmd.Wait()
			if !eventually(10*time.Second, func() bool { return !procfs.Alive(w.gc) }) {
				t.Error("grandchild survived Kill")
			}
			if err := c.Close(ctxT(t)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestEnter(t *testing.T) {
	testutil.CheckChildLeaks(t)
	s, _ := setupCgroup(t)
	c, err := s.New("enter", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctxT(t))
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), roleEnv+"=enter", EnterEnv+"="+filepath.Join(s.root, workerPrefix+"enter"))
	out, err := cmd.Output()
	if want := s.path + "/" + workerPrefix + "enter false <nil>\n"; err != nil || string(out) != want {
		t.Errorf("Enter in a child: %q, %v; want %q (its cgroup, the variable gone, no error)", out, err, want)
	}
	if err := Enter(); err != nil {
		t.Errorf("Enter without %s: %v", EnterEnv, err)
	}
	t.Setenv(EnterEnv, "relative/dir")
	if err := Enter(); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
		t.Errorf("Enter with a relative path: %v", err)
	}
}
