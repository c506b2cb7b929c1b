package proc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if os.Getenv("PROC_TEST_CHILD") == "orphan-maker" {
		// Fork a grandchild and exit at once: the grandchild is
		// re-parented to the nearest subreaper.
		cmd := exec.Command("/bin/sleep", "0.2")
		if err := cmd.Start(); err != nil {
			os.Exit(3)
		}
		os.Exit(0)
	}
	if os.Getenv("PROC_TEST_CHILD") == "subreaper" {
		os.Exit(subreaper())
	}
	if os.Getenv("PROC_TEST_CHILD") == "late-adopt" {
		os.Exit(lateAdopt())
	}
	os.Exit(m.Run())
}

// subreaper becomes a child subreaper that reaps everything, starts a child
// that abandons a grandchild, and exits 0 once both were reaped, the
// grandchild as an orphan.
func subreaper() int {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return 2
	}
	orphans := make(chan Exit, 1)
	Default().ReapAll(func(e Exit) { orphans <- e })
	child := make(chan Exit, 1)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PROC_TEST_CHILD=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PROC_TEST_CHILD=orphan-maker")
	if _, _, err := Default().Start(os.Args[0], os.Args[:1], &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}}, func(e Exit) { child <- e }); err != nil {
		return 3
	}
	for _, c := range []chan Exit{child, orphans} {
		select {
		case e := <-c:
			if e.Status.ExitStatus() != 0 {
				return 4
			}
		case <-time.After(20 * time.Second):
			return 5
		}
	}
	return 0
}

func TestStartReportsExitStatus(t *testing.T) {
	got := make(chan Exit, 1)
	pid, pidfd, err := Default().Start("/bin/sh", []string{"sh", "-c", "exit 7"}, &syscall.ProcAttr{}, func(e Exit) { got <- e })
	if err != nil {
		t.Fatal(err)
	}
	if pidfd >= 0 {
		defer syscall.Close(pidfd)
	}
	select {
	case e := <-got:
		if e.PID != pid || e.Status.ExitStatus() != 7 {
			t.Errorf("exit %+v, want pid %d status 7", e, pid)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit reported")
	}
}

// Children started elsewhere (os/exec) are left to their owner when the
// reaper does not reap everything.
func TestForeignChildrenAreLeftAlone(t *testing.T) {
	ours := make(chan Exit, 1)
	_, pidfd, err := Default().Start("/bin/sleep", []string{"sleep", "0.3"}, &syscall.ProcAttr{}, func(e Exit) { ours <- e })
	if err != nil {
		t.Fatal(err)
	}
	if pidfd >= 0 {
		defer syscall.Close(pidfd)
	}
	out, err := exec.Command("/bin/sh", "-c", "echo foreign").Output()
	if err != nil || strings.TrimSpace(string(out)) != "foreign" {
		t.Fatalf("os/exec child: %q %v", out, err)
	}
	select {
	case <-ours:
	case <-time.After(30 * time.Second):
		t.Fatal("our child was not reaped")
	}
}

func TestReapAllReapsOrphans(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PROC_TEST_CHILD=subreaper")
	cmd.WaitDelay = time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("subreaper: %v\n%s", err, out)
	}
}

// lateAdopt reaps everything, then adopts a child that already exited, as
// an upgraded baton adopts a worker that died during the exec.
func lateAdopt() int {
	Default().ReapAll(nil)
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "exit 5"}, &syscall.ProcAttr{})
	if err != nil {
		return 2
	}
	deadline := time.Now().Add(20 * time.Second)
	for Default().Orphans() == 0 {
		if time.Now().After(deadline) {
			return 3
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := make(chan Exit, 1)
	Default().Adopt(pid, func(e Exit) { got <- e })
	select {
	case e := <-got:
		if e.PID != pid || e.Status.ExitStatus() != 5 || Default().Orphans() != 0 {
			return 4
		}
	case <-time.After(20 * time.Second):
		return 5
	}
	return 0
}

func TestAdoptHearsOfAChildAlreadyReaped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PROC_TEST_CHILD=late-adopt")
	cmd.WaitDelay = time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("late adopt: %v\n%s", err, out)
	}
}

func TestOutput(t *testing.T) {
	out, err := Output(context.Background(), []string{"sh", "-c", "echo hi; echo oops >&2"}, os.Environ())
	if err != nil || string(out) != "hi\n" {
		t.Errorf("got %q, %v", out, err)
	}
	_, err = Output(context.Background(), []string{"sh", "-c", "echo bad >&2; exit 3"}, os.Environ())
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Status.ExitStatus() != 3 || strings.TrimSpace(string(ee.Stderr)) != "bad" {
		t.Errorf("got %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Output(ctx, []string{"sleep", "30"}, os.Environ()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v", err)
	}
}

func TestExecFailureIsReturned(t *testing.T) {
	if err := Exec("/nonexistent/baton", []string{"baton"}, nil); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("got %v", err)
	}
}
