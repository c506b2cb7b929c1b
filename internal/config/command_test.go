package config

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/batonhq/baton/internal/execcheck"
)

// The command is checked where it was written: the file's line and column,
// or the command line.
func TestCheckCommandNamesWhereTheCommandWasSet(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "app.py")
	if err := os.WriteFile(script, []byte("#!/usr/bin/python4\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, "workers = 2\ncommand = [\""+script+"\", \"--x\"]\n")
	c, err := resolve(t, []string{"-c", p})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CheckCommand("/usr/bin:/bin")
	var ce *Error
	var ee *execcheck.Error
	if !errors.As(err, &ce) || !errors.As(err, &ee) || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("error %v (%T): want a *config.Error wrapping an *execcheck.Error for ENOENT", err, err)
	}
	if want := p + ":2:1: command: \"" + script + "\": its interpreter /usr/bin/python4"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q\nwant it to start %q", err, want)
	}

	// From the command line, over the file's command.
	c, err = resolve(t, []string{"-c", p}, "no-such-program-x")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CheckCommand("/usr/bin:/bin")
	if want := `worker command: "no-such-program-x": not found in PATH=/usr/bin:/bin`; err == nil || err.Error() != want || !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("error %v, want %q", err, want)
	}

	c, err = resolve(t, nil, "sh", "-c", "exit 0")
	if err != nil {
		t.Fatal(err)
	}
	if path, err := c.CheckCommand("/nonexistent:/bin"); err != nil || path != "/bin/sh" {
		t.Errorf("CheckCommand = %q, %v; want /bin/sh", path, err)
	}
}
