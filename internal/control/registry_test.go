package control

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestInstanceName(t *testing.T) {
	for in, want := range map[string]string{
		"baton@myapp.service": "myapp", "baton@myapp": "myapp", "myapp.service": "myapp", "myapp": "myapp",
		"web@1.service": "web@1", "baton@.service": "baton@", "pid-12": "pid-12",
	} {
		if got := InstanceName(in); got != want {
			t.Errorf("InstanceName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRegistryDirs(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if d := RegistryDir(env(map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}), 1000); d != "/run/user/1000/baton" {
		t.Errorf("user: %q", d)
	}
	if d := RegistryDir(env(nil), 0); d != "/run/baton" {
		t.Errorf("root: %q", d)
	}
	if d := RegistryDir(env(nil), 1000); d != "" {
		t.Errorf("no registry: %q", d)
	}
	if d := SearchDirs(env(map[string]string{"XDG_RUNTIME_DIR": "/run/user/0"})); strings.Join(d, " ") != "/run/user/0/baton /run/baton" {
		t.Errorf("search: %q", d)
	}
	if d := SearchDirs(env(nil)); strings.Join(d, " ") != "/run/baton" {
		t.Errorf("search: %q", d)
	}
}

// touch stands in for a control socket.
func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

// sleeper is another live process, standing in for another baton.
func sleeper(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

// fakeEntry registers pid under name the way a baton without
// RuntimeDirectory= does, with a listening control socket.
func fakeEntry(t *testing.T, registry, name string, pid int) string {
	t.Helper()
	reg, note, err := Register(registry, name, "", pid)
	if err != nil || note != "" {
		t.Fatal(err, note)
	}
	l, err := net.Listen("unix", filepath.Join(reg.Dir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Publish(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close()
		if err := reg.Close(); err != nil {
			t.Error(err)
		}
	})
	return filepath.Join(reg.Dir, SocketName)
}

func TestRegisterFindAndClose(t *testing.T) {
	registry := filepath.Join(t.TempDir(), "baton")
	dirs := []string{registry}
	if _, err := Find(Query{Dirs: dirs}); !errors.Is(err, ErrNotFound) {
		t.Errorf("empty registry: %v", err)
	}

	// Without RuntimeDirectory=: baton's own directory, removed on Close.
	self := os.Getpid()
	reg, note, err := Register(registry, "myapp", "", self)
	if err != nil || note != "" || reg.Dir != filepath.Join(registry, "myapp") || !reg.OwnsDir {
		t.Fatalf("%+v %q %v", reg, note, err)
	}
	if fi, err := os.Stat(reg.Dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("entry %v %v", fi.Mode(), err)
	}
	// Not found until published: its socket may not listen yet.
	if _, err := Find(Query{Name: "myapp", Dirs: dirs}); !errors.Is(err, ErrNotFound) {
		t.Errorf("found before Publish: %v", err)
	}
	if err := reg.Publish(); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(registry, "myapp", SocketName)
	touch(t, sock)
	for _, q := range []Query{
		{Dirs: dirs}, {Name: "myapp", Dirs: dirs}, {Name: "baton@myapp.service", Dirs: dirs},
		{Name: strconv.Itoa(self), Dirs: dirs}, {MainPID: self, Dirs: dirs},
	} {
		if got, err := Find(q); got != sock || err != nil {
			t.Errorf("Find(%+v) = %q, %v", q, got, err)
		}
	}
	if _, err := Find(Query{Name: "other", Dirs: dirs}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `named "other"`) || !strings.Contains(err.Error(), fmt.Sprintf("running: myapp (pid %d, %s)", self, sock)) {
		t.Errorf("unknown name: %v", err)
	}
	if _, err := Find(Query{MainPID: 1 << 30, Dirs: dirs}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown pid: %v", err)
	}

	// Published but its socket elsewhere (--control): not listed.
	lone := sleeper(t)
	elsewhere, _, err := Register(registry, "elsewhere", "", lone)
	if err != nil || elsewhere.Publish() != nil {
		t.Fatal(err)
	}
	defer elsewhere.Close()
	if got := List(dirs); len(got) != 1 || got[0].Name != "myapp" {
		t.Errorf("listed: %v", got)
	}

	// A second baton: no name, no pid, is ambiguous; both are listed.
	other := sleeper(t)
	sock2 := fakeEntry(t, registry, "web", other)
	_, err = Find(Query{Dirs: dirs})
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "myapp (pid") || !strings.Contains(err.Error(), fmt.Sprintf("web (pid %d, %s)", other, sock2)) {
		t.Errorf("two batons: %v", err)
	}
	if got, err := Find(Query{MainPID: other, Dirs: dirs}); got != sock2 || err != nil {
		t.Errorf("by MAINPID: %q %v", got, err)
	}
	// ExecReload= of a unit with RuntimeDirectory= uses its own.
	rt := t.TempDir()
	touch(t, filepath.Join(rt, SocketName))
	if got, err := Find(Query{RuntimeDir: rt, MainPID: other, Dirs: dirs}); got != filepath.Join(rt, SocketName) || err != nil {
		t.Errorf("by RUNTIME_DIRECTORY: %q %v", got, err)
	}

	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(reg.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("entry left behind: %v", err)
	}
	if got, err := Find(Query{Dirs: dirs}); got != sock2 || err != nil {
		t.Errorf("one left: %q %v", got, err)
	}
}

func TestRegisterWithRuntimeDirectory(t *testing.T) {
	registry := filepath.Join(t.TempDir(), "baton")
	self := os.Getpid()

	// RuntimeDirectory=baton/NAME, as baton@.service: the entry itself.
	if err := os.MkdirAll(filepath.Join(registry, "myapp"), 0o750); err != nil {
		t.Fatal(err)
	}
	rt := filepath.Join(registry, "myapp")
	reg, note, err := Register(registry, "baton-ignored", rt, self)
	if err != nil || note != "" || reg.Entry != rt || reg.OwnsDir || reg.OwnsLink {
		t.Fatalf("%+v %q %v", reg, note, err)
	}
	if err := reg.Publish(); err != nil {
		t.Fatal(err)
	}
	touch(t, filepath.Join(rt, SocketName))
	if got, err := Find(Query{Name: "myapp", Dirs: []string{registry}}); got != filepath.Join(rt, SocketName) || err != nil {
		t.Errorf("%q %v", got, err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rt); err != nil {
		t.Errorf("systemd's directory removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(rt, PIDFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("baton.pid left behind: %v", err)
	}

	// RuntimeDirectory= elsewhere: a symlink, removed on Close.
	elsewhere := t.TempDir()
	reg, note, err = Register(registry, "web", elsewhere, self)
	if err != nil || note != "" || !reg.OwnsLink || reg.Dir != elsewhere {
		t.Fatalf("%+v %q %v", reg, note, err)
	}
	if target, err := os.Readlink(filepath.Join(registry, "web")); target != elsewhere || err != nil {
		t.Errorf("link %q %v", target, err)
	}
	if err := reg.Publish(); err != nil {
		t.Fatal(err)
	}
	touch(t, filepath.Join(elsewhere, SocketName))
	if got, err := Find(Query{Name: "web", Dirs: []string{registry}}); got != filepath.Join(registry, "web", SocketName) || err != nil {
		t.Errorf("%q %v", got, err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(registry, "web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link left behind: %v", err)
	}

	// A service user with no registry of its own (DynamicUser=, not root)
	// still has its RuntimeDirectory=baton/NAME in the system registry.
	reg, note, err = Register("", "ignored", filepath.Join(SystemRegistry, "myapp"), self)
	if err != nil || note != "" || reg.Entry != filepath.Join(SystemRegistry, "myapp") || reg.OwnsDir || reg.OwnsLink {
		t.Errorf("%+v %q %v", reg, note, err)
	}

	// No registry (not root, no XDG_RUNTIME_DIR): runs unregistered.
	reg, note, err = Register("", "web", elsewhere, self)
	if err != nil || note != "" || reg.Entry != "" || reg.Publish() != nil {
		t.Errorf("%+v %q %v", reg, note, err)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, PIDFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an unregistered baton wrote baton.pid: %v", err)
	}
	if _, _, err := Register("", "web", "", self); !errors.Is(err, ErrNoRegistry) {
		t.Errorf("neither: %v", err)
	}
}

func TestRegisterLeavesLiveBatonsAlone(t *testing.T) {
	registry := filepath.Join(t.TempDir(), "baton")
	other := sleeper(t)
	theirs := fakeEntry(t, registry, "myapp", other)

	self := os.Getpid()
	reg, note, err := Register(registry, "myapp", "", self)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	want := fmt.Sprintf("myapp-%d", self)
	if filepath.Base(reg.Dir) != want || !strings.Contains(note, fmt.Sprintf("belongs to another running baton (pid %d)", other)) {
		t.Errorf("%+v %q", reg, note)
	}
	if _, err := os.Stat(theirs); err != nil {
		t.Errorf("the live baton's socket was removed: %v", err)
	}
	// And Listen never takes over a socket that a live process listens on.
	if _, err := Listen(theirs, fakeHandler{}); !errors.Is(err, ErrInUse) {
		t.Errorf("Listen over a live socket: %v", err)
	}
}

func TestRegisterReplacesStaleEntries(t *testing.T) {
	registry := filepath.Join(t.TempDir(), "baton")
	entry := filepath.Join(registry, "myapp")
	if err := os.MkdirAll(entry, 0o700); err != nil {
		t.Fatal(err)
	}
	// A baton that was killed: its pid is gone, its socket stayed.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(entry, PIDFileName), []byte(strconv.Itoa(dead.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(entry, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if got := List([]string{registry}); len(got) != 0 {
		t.Errorf("a dead baton listed: %v", got)
	}
	// A pid reused by a process that started after baton.pid was written
	// is not that baton.
	if err := os.WriteFile(filepath.Join(entry, PIDFileName), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-24 * time.Hour)
	if err := os.Chtimes(filepath.Join(entry, PIDFileName), past, past); err != nil {
		t.Fatal(err)
	}
	if got := List([]string{registry}); len(got) != 0 {
		t.Errorf("a reused pid listed: %v", got)
	}
	reg, note, err := Register(registry, "myapp", "", os.Getpid())
	if err != nil || note != "" || reg.Dir != entry {
		t.Fatalf("%+v %q %v", reg, note, err)
	}
	if ents, _ := os.ReadDir(entry); len(ents) != 0 {
		t.Errorf("stale files kept: %v", ents)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}

	// Something that is not a baton's entry is left alone.
	if err := os.MkdirAll(entry, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(entry, "data"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Register(registry, "myapp", "", os.Getpid()); err == nil || !strings.Contains(err.Error(), "holds data: not a baton's entry") {
		t.Errorf("foreign entry: %v", err)
	}
	if _, err := os.Stat(filepath.Join(entry, "data")); err != nil {
		t.Errorf("foreign file removed: %v", err)
	}
}
