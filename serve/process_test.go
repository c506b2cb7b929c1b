package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testutil"
	"github.com/batonhq/baton/scoreboard"
)

// roleEnv makes the test binary, re-executed, play a worker program.
const roleEnv = "SERVE_TEST_ROLE"

// child is the worker program: it takes its sockets by name, prints what
// it found, then serves with Run until signalled.
func child(role string) int {
	if role == "orphan" {
		return orphanChild()
	}
	set, err := Sockets()
	if err != nil {
		fmt.Println("sockets:", err)
		return 1
	}
	_, missing := set.Listener("nope")
	fmt.Printf("names=%s env=%q,%q,%q\n", strings.Join(set.Names(), ","), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDNAMES"))
	fmt.Printf("missing=%v\n", missing)
	web, err := set.Listener("web")
	if err != nil {
		fmt.Println("web:", err)
		return 1
	}
	admin, err := set.Listener("admin")
	if err != nil {
		fmt.Println("admin:", err)
		return 1
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pid %d on %s board=%q\n", os.Getpid(), r.Context().Value(http.LocalAddrContextKey), os.Getenv(scoreboard.EnvFD))
	})
	if err := Run(context.Background(), Config{Handler: h}, web, admin); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	return 0
}

// The whole contract with a real process, as baton starts one: two named
// sockets at fds 3 and 4 with LISTEN_PID set to the worker's own pid, the
// scoreboard at fd 5, NOTIFY_SOCKET. The worker finds its sockets by name,
// says READY=1, reports into the board, drains on SIGTERM and exits 0.
func TestWorkerProcess(t *testing.T) {
	testutil.CheckFDLeaks(t)
	testutil.CheckChildLeaks(t)
	m := newManager(t)
	var files []*os.File
	var addrs []string
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f, err := l.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		defer f.Close()
		files = append(files, f)
		addrs = append(addrs, l.Addr().String())
	}
	board, err := scoreboard.Create(scoreboard.DefaultSlots)
	if err != nil {
		t.Fatal(err)
	}
	defer board.Close()
	files = append(files, board.File())

	cmd := workerCmd("run", "LISTEN_FDS=2", "LISTEN_FDNAMES=web:admin",
		scoreboard.EnvFD+"=5", "NOTIFY_SOCKET="+m.path, EnvReports+"=auto")
	cmd.ExtraFiles = files
	out := &logBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	waited := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(waited) }()
	defer func() {
		select {
		case <-waited:
		default:
			cmd.Process.Kill()
			<-waited
		}
	}()

	m.waitFor(t, "READY=1", 20*time.Second)
	pid := cmd.Process.Pid
	for _, want := range []string{
		"names=web,admin env=\"\",\"\",\"\"",
		`missing=socket "nope": socket not passed: the service manager passed web, admin (LISTEN_FDNAMES)`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("worker output lacks %q:\n%s", want, out)
		}
	}
	for _, a := range addrs {
		_, body, err := dial(t, a).get("/")
		if err != nil || body != fmt.Sprintf("pid %d on %s board=\"\"\n", pid, a) {
			t.Errorf("GET on %s: %q %v", a, body, err)
		}
	}
	if board.Writer() != pid || board.InFlight() != 0 {
		t.Errorf("board writer %d (worker %d), in flight %d", board.Writer(), pid, board.InFlight())
	}
	// The worker keeps the board mapped, not open.
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if target, _ := os.Readlink(fd); strings.Contains(target, "baton-scoreboard") {
			t.Errorf("the worker still has the board open at %s", fd)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	m.waitFor(t, "STOPPING=1", 20*time.Second)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("worker exit: %v\n%s", err, out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the worker did not exit after SIGTERM\n%s", out)
	}
	if !strings.Contains(out.String(), "draining on terminated") || !strings.Contains(out.String(), "drained") {
		t.Errorf("worker output:\n%s", out)
	}
}

func TestTakeSockets(t *testing.T) {
	env := func(kv ...string) func(string) (string, bool) {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	for _, tc := range []struct {
		name string
		env  func(string) (string, bool)
		none string // why no sockets, for a set
		err  string
	}{
		{"nothing passed", env(), "LISTEN_FDS is not set", ""},
		{"no LISTEN_PID", env("LISTEN_FDS", "2"), "LISTEN_PID is not", ""},
		{"another pid", env("LISTEN_FDS", "2", "LISTEN_PID", "1"), "was passed to pid 1, this is pid 42", ""},
		{"zero", env("LISTEN_FDS", "0", "LISTEN_PID", "42"), "LISTEN_FDS=0", ""},
		{"bad pid", env("LISTEN_FDS", "2", "LISTEN_PID", "me"), "", `LISTEN_PID="me": not a pid`},
		{"bad count", env("LISTEN_FDS", "-1", "LISTEN_PID", "42"), "", `LISTEN_FDS="-1"`},
		{"huge count", env("LISTEN_FDS", "100000", "LISTEN_PID", "42"), "", `LISTEN_FDS="100000"`},
		{"names disagree", env("LISTEN_FDS", "2", "LISTEN_PID", "42", "LISTEN_FDNAMES", "a"), "", "1 names for LISTEN_FDS=2"},
	} {
		set, err := takeSockets(tc.env, 42)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		_, lerr := set.Listener("web")
		if len(set.All()) != 0 || lerr == nil || !strings.Contains(lerr.Error(), tc.none) {
			t.Errorf("%s: %d sockets, %v, want %q", tc.name, len(set.All()), lerr, tc.none)
		}
	}
}

// workerCmd runs the test binary as a worker in role, with env added.
// LISTEN_PID must be the worker's pid, known only after fork: a shell sets
// it and executes the binary in place, as baton's shim does.
func workerCmd(role string, env ...string) *exec.Cmd {
	cmd := exec.Command("/bin/sh", "-c", `export LISTEN_PID=$$; exec "$0" "$@"`, os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role), env...)
	return cmd
}

// orphanChild serves /slow, which says STATUS=entered and answers after
// 500 ms, on the socket passed.
func orphanChild() int {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := Notify("STATUS=entered"); err != nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
		fmt.Fprintln(w, "done")
	})
	if err := Run(context.Background(), Config{Handler: h}); err != nil {
		return 1
	}
	return 0
}

// A worker whose supervisor died as baton does under kill -9 with
// ExitType=cgroup: its output pipe has no reader any more, and its
// parent-death SIGTERM can arrive more than once. It still finishes the
// request it holds and exits 0: its log lines fail with EPIPE instead of
// killing it with SIGPIPE, and a repeated SIGTERM does not cut the drain
// short.
func TestOrphanedWorkerFinishesItsRequest(t *testing.T) {
	testutil.CheckFDLeaks(t)
	testutil.CheckChildLeaks(t)
	m := newManager(t)
	f, addr := listenFile(t)
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close() // closed early on purpose below; this covers a failure before
	cmd := workerCmd("orphan", "LISTEN_FDS=1", "LISTEN_FDNAMES=web", "NOTIFY_SOCKET="+m.path)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(errors.Join(err, w.Close()))
	}
	w.Close()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	m.waitFor(t, "READY=1", 20*time.Second)
	c := dial(t, addr)
	type answer struct {
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		_, body, err := c.get("/slow")
		got <- answer{body, err}
	}()
	m.waitFor(t, "STATUS=entered", 20*time.Second)
	// The supervisor dies: nobody reads the worker's output any more.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// A second SIGTERM once the drain runs (the kernel merges signals
	// still pending, so the first must have been taken).
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	m.waitFor(t, "STOPPING=1", 20*time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-got:
		if a.err != nil || a.body != "done\n" {
			t.Errorf("the request in flight: %q, %v", a.body, a.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no answer")
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("worker: %v (want exit 0)", err)
	}
}
