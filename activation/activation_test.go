package activation

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestMain doubles as the child that inherits: it reports what Inherit made
// of its environment as JSON on stdout.
func TestMain(m *testing.M) {
	if os.Getenv("BATON_TEST_INHERIT") == "1" {
		set, err := Inherit(OSEnviron())
		out := map[string]any{}
		if err != nil {
			out["error"] = err.Error()
		}
		var socks []string
		for _, s := range set {
			socks = append(socks, s.Name+" "+s.Addr)
		}
		out["sockets"] = socks
		_ = json.NewEncoder(os.Stdout).Encode(out)
		return
	}
	os.Exit(m.Run())
}

type inheritResult struct {
	Error   string
	Sockets []string
}

// inheritChild runs the test binary with files at fds 3.. and env; LISTEN_PID
// is set to the child's own pid unless env sets it.
func inheritChild(t *testing.T, files []*os.File, env ...string) inheritResult {
	t.Helper()
	script := `LISTEN_PID=${LISTEN_PID:-$$} exec "$0"`
	cmd := exec.Command("/bin/sh", "-c", script, os.Args[0])
	cmd.Env = append([]string{"BATON_TEST_INHERIT=1", "PATH=/usr/bin:/bin"}, env...)
	cmd.ExtraFiles = files
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	var r inheritResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	return r
}

func tcpListener(t *testing.T) *os.File {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	t.Cleanup(func() { f.Close() })
	return f
}

func TestInheritNamedSockets(t *testing.T) {
	a, b := tcpListener(t), tcpListener(t)
	r := inheritChild(t, []*os.File{a, b}, "LISTEN_FDS=2", "LISTEN_FDNAMES=web:metrics")
	if r.Error != "" {
		t.Fatal(r.Error)
	}
	if len(r.Sockets) != 2 || !strings.HasPrefix(r.Sockets[0], "web tcp://127.0.0.1:") || !strings.HasPrefix(r.Sockets[1], "metrics tcp://127.0.0.1:") {
		t.Errorf("sockets %v", r.Sockets)
	}
}

func TestInheritDefaultNames(t *testing.T) {
	r := inheritChild(t, []*os.File{tcpListener(t)}, "LISTEN_FDS=1")
	if r.Error != "" || len(r.Sockets) != 1 || !strings.HasPrefix(r.Sockets[0], "unknown ") {
		t.Errorf("got %+v", r)
	}
}

func TestInheritErrorsNameVariableAndValue(t *testing.T) {
	regular, err := os.Open("/etc/hostname")
	if err != nil {
		regular, err = os.Open(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
	}
	defer regular.Close()
	sock := tcpListener(t)
	for _, tc := range []struct {
		files []*os.File
		env   []string
		want  string
	}{
		{nil, []string{"LISTEN_FDS=two"}, `LISTEN_FDS="two": not a count`},
		{nil, []string{"LISTEN_FDS=-1"}, `LISTEN_FDS="-1": not a count`},
		{nil, []string{"LISTEN_FDS=99999"}, `more than 1024`},
		{nil, []string{"LISTEN_FDS=1", "LISTEN_PID=1"}, `LISTEN_PID="1": sockets were passed to pid 1, this is pid`},
		{nil, []string{"LISTEN_FDS=1", "LISTEN_PID=abc"}, `LISTEN_PID="abc": not a pid`},
		{[]*os.File{sock}, []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=a:b"}, `LISTEN_FDNAMES="a:b": 2 names for LISTEN_FDS=1`},
		{[]*os.File{sock, regular}, []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=web:oops"}, `LISTEN_FDS="2": fd 4 (oops) is not a socket but a regular file`},
	} {
		r := inheritChild(t, tc.files, tc.env...)
		if !strings.Contains(r.Error, tc.want) || len(r.Sockets) != 0 {
			t.Errorf("%v: got %+v, want error containing %q and no sockets", tc.env, r, tc.want)
		}
	}
}

func TestInheritUnsetLISTENPID(t *testing.T) {
	env := Environ{Pid: 7, LookupEnv: func(k string) (string, bool) {
		if k == "LISTEN_FDS" {
			return "1", true
		}
		return "", false
	}}
	if _, err := Inherit(env); err == nil || !strings.Contains(err.Error(), "LISTEN_PID") {
		t.Errorf("got %v", err)
	}
	none := Environ{Pid: 7, LookupEnv: func(string) (string, bool) { return "", false }}
	if set, err := Inherit(none); set != nil || err != nil {
		t.Errorf("no LISTEN_FDS: %v %v", set, err)
	}
}

func TestStripEnv(t *testing.T) {
	got := StripEnv([]string{"A=1", "LISTEN_PID=3", "LISTEN_FDS=1", "LISTEN_FDNAMES=x", "LISTEN_FDS_X=keep"})
	if strings.Join(got, " ") != "A=1 LISTEN_FDS_X=keep" {
		t.Errorf("got %v", got)
	}
}

func mustAddr(t *testing.T, s string) config.Address {
	t.Helper()
	a, err := config.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestBindTCPAndServe(t *testing.T) {
	testutil.CheckFDLeaks(t)
	for _, addr := range []string{"tcp://127.0.0.1:0", "tcp://[::1]:0"} {
		s, err := Bind(config.Socket{Name: "web", Address: mustAddr(t, addr), Backlog: 16})
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		l, err := net.FileListener(s.File)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatalf("%s: dial %v", addr, err)
		}
		c.Close()
		l.Close()
		if !strings.HasPrefix(s.Addr, strings.TrimSuffix(addr, "0")) || s.Origin != Bound {
			t.Errorf("described as %s %s", s.Addr, s.Origin)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBindTCPInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Bind(config.Socket{Name: "web", Address: mustAddr(t, l.Addr().String()), Backlog: 16})
	if err == nil || !strings.Contains(err.Error(), "bind socket web to tcp://"+l.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("got %v", err)
	}
}

func TestBindUnix(t *testing.T) {
	testutil.CheckFDLeaks(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "app.sock")
	c := config.Socket{Name: "admin", Address: mustAddr(t, "unix://"+path), Backlog: 8, Mode: 0o600}
	s, err := Bind(c)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket file %v %v", fi, err)
	}
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	s.Close()
	// The socket file left behind is stale and is replaced.
	s2, err := Bind(c)
	if err != nil {
		t.Fatalf("rebind over stale socket: %v", err)
	}
	// A socket a live process listens on is never taken over.
	_, err = Bind(c)
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), path+": address already in use") {
		t.Errorf("bind over a live socket: %v", err)
	}
	if conn, err := net.Dial("unix", path); err != nil {
		t.Errorf("the live socket was taken over: %v", err)
	} else {
		conn.Close()
	}
	s2.Close()
	// A regular file is not ours to delete.
	reg := filepath.Join(dir, "data")
	os.WriteFile(reg, []byte("keep"), 0o600)
	c.Address = mustAddr(t, "unix://"+reg)
	if _, err := Bind(c); err == nil || !strings.Contains(err.Error(), "is not a socket; refusing to replace it") {
		t.Errorf("got %v", err)
	}
	c.Owner = "no-such-user-baton"
	if _, err := Bind(c); err == nil || !strings.Contains(err.Error(), `owner "no-such-user-baton"`) {
		t.Errorf("got %v", err)
	}
}

func TestResolveMatchesByName(t *testing.T) {
	testutil.CheckFDLeaks(t)
	inh, err := Bind(config.Socket{Name: "web", Address: mustAddr(t, "127.0.0.1:0"), Backlog: 4})
	if err != nil {
		t.Fatal(err)
	}
	inh.Origin = Inherited
	extra, err := Bind(config.Socket{Name: "from-unit", Address: mustAddr(t, "127.0.0.1:0"), Backlog: 4})
	if err != nil {
		t.Fatal(err)
	}
	extra.Origin = Inherited
	conf := []config.Socket{
		{Name: "admin", Address: mustAddr(t, "127.0.0.1:0"), Backlog: 4},
		{Name: "web", Address: mustAddr(t, "127.0.0.1:1"), Backlog: 4},
	}
	set, notes, err := Resolve(conf, Set{inh, extra})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	if got := set.Names(); got != "admin:web:from-unit" {
		t.Errorf("order %s", got)
	}
	if set[1] != inh || set[0].Origin != Bound {
		t.Errorf("web must be the inherited socket: %v", set)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "the config's tcp://127.0.0.1:1 is ignored") {
		t.Errorf("notes %v", notes)
	}
	if fmt.Sprint(len(set.Files())) != "3" {
		t.Errorf("files %v", set.Files())
	}
}

func TestResolveClosesWhatItBoundOnError(t *testing.T) {
	testutil.CheckFDLeaks(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	conf := []config.Socket{
		{Name: "a", Address: mustAddr(t, "127.0.0.1:0"), Backlog: 4},
		{Name: "b", Address: mustAddr(t, l.Addr().String()), Backlog: 4},
	}
	if _, _, err := Resolve(conf, nil); err == nil || !strings.Contains(err.Error(), "bind socket b") {
		t.Fatalf("got %v", err)
	}
}

func TestSealInheritedFDs(t *testing.T) {
	fd, err := syscall.Open("/dev/null", syscall.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := SealInheritedFDs(3); err != nil {
		t.Fatal(err)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("fd %d flags %d, %v: want close-on-exec", fd, flags, err)
	}
}

func TestRebindKeepsUnchangedSockets(t *testing.T) {
	testutil.CheckFDLeaks(t)
	web, err := Bind(config.Socket{Name: "web", Address: mustAddr(t, "127.0.0.1:0"), Backlog: 4})
	if err != nil {
		t.Fatal(err)
	}
	old, err := Bind(config.Socket{Name: "old", Address: mustAddr(t, "127.0.0.1:0"), Backlog: 4})
	if err != nil {
		t.Fatal(err)
	}
	unit, err := Bind(config.Socket{Name: "unit", Address: mustAddr(t, "127.0.0.1:0"), Backlog: 4})
	if err != nil {
		t.Fatal(err)
	}
	unit.Origin = Inherited
	current := Set{web, old, unit}
	defer current.Close()
	conf := []config.Socket{
		{Name: "web", Address: mustAddr(t, web.Addr)},
		{Name: "admin", Address: mustAddr(t, "127.0.0.1:0"), Backlog: 4},
	}
	set, opened, err := Rebind(conf, current)
	if err != nil {
		t.Fatal(err)
	}
	defer opened.Close()
	if set.Names() != "web:admin:unit" || set[0] != web || set[2] != unit || len(opened) != 1 || opened[0] != set[1] {
		t.Errorf("set %v opened %v", set, opened)
	}
}
