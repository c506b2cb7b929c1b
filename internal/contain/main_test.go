package contain

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// The test binary plays every process of these tests, chosen by
// roleEnv: a worker, the grandchild it forks, the middle process that
// orphans it, or a whole scenario run in a child process (which becomes a
// subreaper, which the test binary itself must not).
const (
	roleEnv     = "CONTAIN_TEST_ROLE"
	shapeEnv    = "CONTAIN_TEST_SHAPE"    // worker: stay, exit or middle
	allocEnv    = "CONTAIN_TEST_ALLOC"    // grandchild: MiB to allocate and touch
	gcSetsidEnv = "CONTAIN_TEST_GCSETSID" // "0": the grandchild keeps the worker's session
	noMarkerEnv = "CONTAIN_TEST_NOMARKER" // "1": the grandchild does not inherit EnvID
	scenarioEnv = "CONTAIN_TEST_SCENARIO"
	noEnterEnv  = "CONTAIN_TEST_NOENTER" // "1": the worker does not call Enter
	// The worker waits to be in this cgroup before it forks.
	awaitCgroupEnv = "CONTAIN_TEST_AWAITCG"
)

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "worker":
		// As baton's exec shim does.
		if os.Getenv(noEnterEnv) != "1" {
			if err := Enter(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		os.Exit(runWorker())
	case "enter":
		err := Enter()
		_, left := os.LookupEnv(EnterEnv)
		cg, _ := cgroupOf(0)
		fmt.Printf("%s %v %v\n", cg, left, err)
		os.Exit(0)
	case "middle":
		os.Exit(runMiddle())
	case "grandchild":
		runGrandchild()
	case "scenario":
		os.Exit(runScenario(os.Getenv(scenarioEnv)))
	}
	os.Exit(m.Run())
}

// ballast keeps the grandchild's allocation alive.
var ballast []byte

// runGrandchild allocates and touches memory, says so on stdout, and
// waits to be killed.
func runGrandchild() {
	mib, _ := strconv.Atoi(os.Getenv(allocEnv))
	ballast = make([]byte, mib<<20)
	for i := 0; i < len(ballast); i += 4096 {
		ballast[i] = 1
	}
	fmt.Println("ready")
	for {
		time.Sleep(time.Hour)
	}
}

// startGrandchild forks the grandchild, in a session of its own unless
// gcSetsidEnv says otherwise, and returns its pid once it is ready.
func startGrandchild() (int, error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{roleEnv + "=grandchild", allocEnv + "=" + os.Getenv(allocEnv)}
	if os.Getenv(noMarkerEnv) != "1" {
		cmd.Env = append(cmd.Env, EnvID+"="+os.Getenv(EnvID))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: os.Getenv(gcSetsidEnv) != "0"}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		return 0, fmt.Errorf("grandchild: %q, %v", line, err)
	}
	return cmd.Process.Pid, nil
}

// runMiddle forks the grandchild, prints its pid and exits, orphaning it.
func runMiddle() int {
	pid, err := startGrandchild()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(pid)
	return 0
}

// runWorker forks the grandchild (itself, or through a middle process
// that exits), prints its pid, then waits to be killed (stay, middle) or
// exits leaving the grandchild behind (exit).
func runWorker() int {
	if want := os.Getenv(awaitCgroupEnv); want != "" {
		// Forks only once moved from outside (Cell.Started).
		if !eventually(10*time.Second, func() bool { cg, _ := cgroupOf(0); return cg == want }) {
			cg, _ := cgroupOf(0)
			fmt.Fprintf(os.Stderr, "worker: still in %s, not moved to %s\n", cg, want)
			return 1
		}
	}
	var gc int
	var err error
	if os.Getenv(shapeEnv) == "middle" {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), roleEnv+"=middle")
		cmd.Stderr = os.Stderr
		var out []byte
		if out, err = cmd.Output(); err == nil {
			gc, err = strconv.Atoi(strings.TrimSpace(string(out)))
		}
	} else {
		gc, err = startGrandchild()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	fmt.Println(gc)
	if os.Getenv(shapeEnv) == "exit" {
		return 0
	}
	for {
		time.Sleep(time.Hour)
	}
}

// worker is a spawned test worker.
type worker struct {
	cmd *exec.Cmd
	gc  int // its grandchild
}

// spawn starts a test worker in cell c, as baton would: with the cell's
// SysProcAttr and environment.
func spawn(c Cell, shape string, allocMiB int, extraEnv ...string) (*worker, error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), roleEnv+"=worker", shapeEnv+"="+shape, allocEnv+"="+strconv.Itoa(allocMiB))
	cmd.Env = append(append(cmd.Env, extraEnv...), c.Env()...)
	attr := &syscall.SysProcAttr{}
	c.SysProcAttr(attr)
	cmd.SysProcAttr = attr
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c.Started(cmd.Process.Pid)
	line, err := bufio.NewReader(out).ReadString('\n')
	gc, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("worker said %q: %v", line, err)
	}
	return &worker{cmd: cmd, gc: gc}, nil
}

// eventually polls cond until it holds or within passes.
func eventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// killedBy reports whether a wait status says SIGKILL.
func killedBy(ps *os.ProcessState) bool {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// reap waits up to 10s for pid, a child of this process (or soon to be,
// once re-parented), and returns its status. One still running then is
// killed and reaped, and reported.
func reap(pid int) (syscall.WaitStatus, error) {
	var ws syscall.WaitStatus
	var err error
	done := eventually(10*time.Second, func() bool {
		var got int
		got, err = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		return got == pid || err != nil && err != syscall.ECHILD
	})
	if !done {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		_, _ = syscall.Wait4(pid, nil, 0, nil)
		return ws, fmt.Errorf("pid %d still running after 10s (%v)", pid, err)
	}
	return ws, err
}

// quietLog keeps Setup's log lines out of the test output.
func quietLog() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}
