package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/batonhq/baton/internal/control"
	"github.com/sirupsen/logrus"
)

// touch stands in for a control socket.
func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

func quietLog() (*logrus.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	log := logrus.New()
	log.SetOutput(&buf)
	return log, &buf
}

// Where baton keeps its sockets: started by hand as root without
// XDG_RUNTIME_DIR, a private temporary directory, unregistered; in a
// session, an entry of its own; after an upgrade in place, what the
// previous image had, registered if that image predates the registry.
func TestRegister(t *testing.T) {
	log, buf := quietLog()
	t.Setenv("RUNTIME_DIRECTORY", "")
	t.Setenv("XDG_RUNTIME_DIR", "")
	if os.Geteuid() == 0 {
		reg, err := register(nil, nil, log)
		if err != nil || !reg.OwnsDir || reg.Entry != "" || buf.Len() != 0 {
			t.Fatalf("by hand as root: %+v %v %q", reg, err, buf)
		}
		if err := reg.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(reg.Dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("temporary directory left: %v", err)
		}
	}

	xdg := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", xdg)
	dirs := []string{filepath.Join(xdg, "baton")}
	name := "pid-" + strconv.Itoa(os.Getpid())
	reg, err := register(nil, nil, log)
	if err != nil || reg.Entry != filepath.Join(xdg, "baton", name) || !reg.OwnsDir {
		t.Fatalf("in a session: %+v %v", reg, err)
	}
	if err := reg.Publish(); err != nil {
		t.Fatal(err)
	}
	touch(t, filepath.Join(reg.Dir, control.SocketName))
	if got, err := control.Find(control.Query{Dirs: dirs}); got != filepath.Join(reg.Dir, control.SocketName) || err != nil {
		t.Errorf("found %q %v", got, err)
	}
	// The image after an upgrade in place keeps the registration.
	if same, err := register(&upgradeState{Registration: reg}, nil, log); same != reg || err != nil {
		t.Errorf("adopted: %+v %v", same, err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}

	// Executed by a baton from before the registry, running in systemd's
	// RuntimeDirectory=: registered now.
	rt := filepath.Join(xdg, "app")
	if err := os.Mkdir(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RUNTIME_DIRECTORY", rt)
	reg, err = register(&upgradeState{RuntimeDir: rt}, nil, log)
	if err != nil || reg.Dir != rt || reg.OwnsDir || !reg.OwnsLink {
		t.Fatalf("adopted from before the registry: %+v %v", reg, err)
	}
	if err := reg.Publish(); err != nil {
		t.Fatal(err)
	}
	touch(t, filepath.Join(rt, control.SocketName))
	if got, err := control.Find(control.Query{Name: name, Dirs: dirs}); got != filepath.Join(xdg, "baton", name, control.SocketName) || err != nil {
		t.Errorf("found %q %v", got, err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	// ... or in a temporary directory: it stays there, its own.
	tmp := t.TempDir()
	if reg, err := register(&upgradeState{RuntimeDir: tmp, OwnsRuntimeDir: true}, nil, log); err != nil || reg.Dir != tmp || !reg.OwnsDir || reg.Entry != "" {
		t.Errorf("adopted temporary directory: %+v %v", reg, err)
	}
	if buf.Len() != 0 {
		t.Errorf("logged: %s", buf)
	}
}
