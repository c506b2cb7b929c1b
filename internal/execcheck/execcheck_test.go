package execcheck

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fakeBinfmt points binfmtMisc at a directory with the given handlers
// (name: enabled), so that results do not depend on the host's handlers.
func fakeBinfmt(t *testing.T, handlers map[string]bool) {
	t.Helper()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "status"), "enabled\n", 0o644)
	write(t, filepath.Join(dir, "register"), "", 0o200)
	for name, on := range handlers {
		state := "disabled"
		if on {
			state = "enabled"
		}
		write(t, filepath.Join(dir, name), state+"\ninterpreter /usr/bin/x\nflags: \nmagic 4a\n", 0o644)
	}
	old := binfmtDir
	binfmtDir = dir
	t.Cleanup(func() { binfmtDir = old })
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// patchedTrue copies /bin/true with its ELF interpreter path or machine
// changed.
func patchedTrue(t *testing.T, path string, patch func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, string(patch(b)), 0o755)
}

// TestCheckAgreesWithExec runs every case for real, as the shim would
// (exec.Command resolves with os/exec.LookPath from this process's PATH and
// working directory), and requires Check to fail exactly when the real
// execution fails, with the cause and words expected.
func TestCheckAgreesWithExec(t *testing.T) {
	fakeBinfmt(t, nil)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	write(t, filepath.Join(bin, "app"), "#!/bin/sh\nexit 0\n", 0o755)
	write(t, filepath.Join(bin, "plain"), "exit 0\n", 0o755)
	write(t, filepath.Join(dir, "noexec.sh"), "#!/bin/sh\nexit 0\n", 0o644)
	write(t, filepath.Join(dir, "lead.sh"), "#!  /bin/sh   -e  \nexit 0\n", 0o755)
	write(t, filepath.Join(dir, "tab.sh"), "#!/bin/sh\t-e\nexit 0\n", 0o755)
	write(t, filepath.Join(dir, "py4.sh"), "#!/usr/bin/python4\nprint(1)\n", 0o755)
	write(t, filepath.Join(dir, "crlf.sh"), "#!/bin/sh\r\nexit 0\r\n", 0o755)
	write(t, filepath.Join(dir, "empty-shebang.sh"), "#!\nexit 0\n", 0o755)
	write(t, filepath.Join(dir, "env-ok.sh"), "#!/usr/bin/env sh\nexit 0\n", 0o755)
	write(t, filepath.Join(dir, "env-missing.sh"), "#!/usr/bin/env no-such-interpreter-x\n", 0o755)
	write(t, filepath.Join(dir, "env-args.sh"), "#!/usr/bin/env sh -e\nexit 0\n", 0o755)
	write(t, filepath.Join(dir, "env-split.sh"), "#!/usr/bin/env -S sh -e\nexit 0\n", 0o755)
	write(t, filepath.Join(dir, "env-split-missing.sh"), "#!/usr/bin/env -S no-such-interpreter-x -e\n", 0o755)
	write(t, filepath.Join(dir, "env-path.sh"), "#!/usr/bin/env -S PATH="+bin+" app\n", 0o755)
	write(t, filepath.Join(dir, "env-plain.sh"), "#!/usr/bin/env plain\n", 0o755) // execvp runs it with /bin/sh
	write(t, filepath.Join(dir, "text"), "echo no shebang\n", 0o755)
	write(t, filepath.Join(dir, "empty"), "", 0o755)
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Scripts run by scripts: s4 is as deep as the kernel goes, s5 is one
	// too many; t1 runs a script whose interpreter is missing.
	write(t, filepath.Join(dir, "s0"), "#!/bin/sh\nexit 0\n", 0o755)
	for i := 1; i <= 5; i++ {
		write(t, filepath.Join(dir, "s"+string(rune('0'+i))), "#!"+filepath.Join(dir, "s"+string(rune('0'+i-1)))+"\n", 0o755)
	}
	write(t, filepath.Join(dir, "t1"), "#!"+filepath.Join(dir, "py4.sh")+"\n", 0o755)
	patchedTrue(t, filepath.Join(dir, "musl-true"), func(b []byte) []byte {
		return bytes.Replace(b, []byte("/lib64/ld-linux-x86-64.so.2"), []byte("/lib64/ld-linux-x86-64.so.9"), 1)
	})
	patchedTrue(t, filepath.Join(dir, "arm-true"), func(b []byte) []byte {
		binary.LittleEndian.PutUint16(b[18:], 183) // EM_AARCH64
		return b
	})
	t.Chdir(dir)

	for _, tc := range []struct {
		command, path string
		wantErr       error // nil: it runs
		want          string
	}{
		{"/bin/true", "/usr/bin:/bin", nil, ""},
		{"true", "/usr/sbin:/usr/bin:/sbin:/bin", nil, ""},
		{"true", "/nonexistent:" + bin, exec.ErrNotFound, `"true": not found in PATH=/nonexistent:` + bin},
		{"app", "/nonexistent:" + bin, nil, ""},
		{"app", "/usr/bin", exec.ErrNotFound, "not found in PATH=/usr/bin"},
		{"app", "", exec.ErrNotFound, "PATH is empty"},
		{"noexec.sh", dir, exec.ErrNotFound, "passed over " + filepath.Join(dir, "noexec.sh") + ": not executable (mode 0644): chmod +x it"},
		{"app", "bin", exec.ErrDot, `found only through the relative PATH entry "bin"`},
		{"app", ":/usr/bin", exec.ErrNotFound, ""}, // "" is ".", where there is no app
		{"/no/such/program", "/usr/bin", syscall.ENOENT, `"/no/such/program": no such file or directory`},
		{"./bin/app", "/usr/bin", nil, ""},
		{"bin/app", "/usr/bin", nil, ""},
		{"./missing", "/usr/bin", syscall.ENOENT, "no such file or directory (relative to the working directory " + dir + ")"},
		{"./noexec.sh", "/usr/bin", syscall.EACCES, "not executable (mode 0644): chmod +x it"},
		{"./adir", "/usr/bin", syscall.EISDIR, "is a directory"},
		{"./bin/app/x", "/usr/bin", syscall.ENOTDIR, "not a directory"},
		{"./lead.sh", "/usr/bin", nil, ""},
		{"./tab.sh", "/usr/bin", nil, ""},
		{"./py4.sh", "/usr/bin", syscall.ENOENT, `its interpreter /usr/bin/python4 ("#!/usr/bin/python4"): no such file or directory`},
		{"./crlf.sh", "/usr/bin", syscall.ENOENT, "carriage return"},
		{"./empty-shebang.sh", "/usr/bin", syscall.ENOEXEC, "names no interpreter"},
		{"./env-ok.sh", "/usr/bin:/bin", nil, ""},
		{"./env-missing.sh", "/usr/bin:/bin", syscall.ENOENT, `runs env, which cannot execute "no-such-interpreter-x": not found in PATH=/usr/bin:/bin`},
		{"./env-args.sh", "/usr/bin:/bin", syscall.ENOENT, `write "#!/usr/bin/env -S sh -e"`},
		{"./env-split.sh", "/usr/bin:/bin", nil, ""},
		{"./env-split-missing.sh", "/usr/bin:/bin", syscall.ENOENT, `cannot execute "no-such-interpreter-x"`},
		{"./env-path.sh", "/usr/bin:/bin", nil, ""},
		{"./env-plain.sh", "/usr/bin:/bin:" + bin, nil, ""},
		{"./text", "/usr/bin", syscall.ENOEXEC, "a script needs one naming its interpreter"},
		{"./empty", "/usr/bin", syscall.ENOEXEC, "exec format error"},
		{"./s4", "/usr/bin", nil, ""},
		{"./s5", "/usr/bin", syscall.ELOOP, "deeper than the kernel follows"},
		{"./t1", "/usr/bin", syscall.ENOENT, "/usr/bin/python4"},
		{"./musl-true", "/usr/bin", syscall.ENOENT, "its ELF interpreter (dynamic loader) /lib64/ld-linux-x86-64.so.9: no such file or directory"},
		{"./arm-true", "/usr/bin", syscall.ENOEXEC, "an ELF binary for AARCH64, and this machine runs amd64"},
		{"", "/usr/bin", exec.ErrNotFound, "not a command"},
	} {
		t.Run(tc.command+"@"+tc.path, func(t *testing.T) {
			t.Setenv("PATH", tc.path)
			_, err := Check(tc.command, tc.path)
			var ce *Error
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("Check: %v, want nil", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("Check: %v, want %v", err, tc.wantErr)
			case err != nil && !errors.As(err, &ce):
				t.Errorf("Check: %T, want *Error", err)
			case err != nil && !strings.Contains(err.Error(), tc.want):
				t.Errorf("Check: %q, want it to say %q", err, tc.want)
			}
			real := exec.Command(tc.command).Run()
			if (real == nil) != (err == nil) {
				t.Errorf("the real execution says %v, Check says %v", real, err)
			}
		})
	}
}

// With a binfmt_misc handler enabled, files of formats the kernel does not
// know may run, so only what is certain is reported.
func TestBinfmtMiscHandlersMakeUnknownFormatsPass(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "text"), "echo\n", 0o755)
	patchedTrue(t, filepath.Join(dir, "arm-true"), func(b []byte) []byte {
		binary.LittleEndian.PutUint16(b[18:], 183)
		return b
	})
	write(t, filepath.Join(dir, "py4.sh"), "#!/usr/bin/python4\n", 0o755)
	fakeBinfmt(t, map[string]bool{"qemu-aarch64": true})
	for _, p := range []string{"text", "arm-true"} {
		if _, err := Check(filepath.Join(dir, p), ""); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if _, err := Check(filepath.Join(dir, "py4.sh"), ""); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("a missing #! interpreter is certain whatever the handlers: %v", err)
	}
	// Disabled handlers execute nothing.
	fakeBinfmt(t, map[string]bool{"qemu-aarch64": false})
	if _, err := Check(filepath.Join(dir, "text"), ""); !errors.Is(err, syscall.ENOEXEC) {
		t.Errorf("text with only a disabled handler: %v", err)
	}
	// Where binfmt_misc cannot be read, a text file is still a script
	// without its #! line, but a binary of unknown format may have a
	// handler.
	old := binfmtDir
	binfmtDir = filepath.Join(dir, "absent")
	defer func() { binfmtDir = old }()
	if _, err := Check(filepath.Join(dir, "text"), ""); !errors.Is(err, syscall.ENOEXEC) {
		t.Errorf("text, binfmt_misc unknown: %v", err)
	}
	if _, err := Check(filepath.Join(dir, "arm-true"), ""); err != nil {
		t.Errorf("foreign ELF, binfmt_misc unknown: %v", err)
	}
}

func TestEnvProgram(t *testing.T) {
	for _, tc := range []struct {
		arg, name, path string
		ok              bool
	}{
		{"python3", "python3", "", true},
		{"python3 -u", "python3 -u", "", true},
		{"-S python3 -u", "python3", "", true},
		{"-Spython3", "python3", "", true},
		{"-S PATH=/opt/bin:/usr/bin app --x", "app", "/opt/bin:/usr/bin", true},
		{"-S A=1 B=2 app", "app", "", true},
		{"-i python3", "", "", false},
		{"-S -i python3", "", "", false},
		{"-S \"quoted\" x", "", "", false},
		{"-S ${HOME}/x", "", "", false},
		{"A=1 python3", "", "", false}, // one argument: an assignment, no program
		{"", "", "", false},
	} {
		name, path, ok := envProgram(tc.arg)
		if name != tc.name || path != tc.path || ok != tc.ok {
			t.Errorf("envProgram(%q) = %q, %q, %v; want %q, %q, %v", tc.arg, name, path, ok, tc.name, tc.path, tc.ok)
		}
	}
}

// LookPath must resolve exactly as os/exec.LookPath does with the same
// PATH, since the exec shim uses that.
func TestLookPathMatchesOSExec(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a", "tool"), "#!/bin/sh\n", 0o644)
	write(t, filepath.Join(dir, "b", "tool"), "#!/bin/sh\n", 0o755)
	write(t, filepath.Join(dir, "c", "tool"), "#!/bin/sh\n", 0o755)
	t.Chdir(dir)
	for _, path := range []string{
		"a:b", dir + "/a:" + dir + "/b:" + dir + "/c", dir + "/c:" + dir + "/b", "/usr/bin:" + dir + "/a", "", ":", "/nonexistent",
	} {
		for _, name := range []string{"tool", "sh", "./b/tool", "a/tool", "nope"} {
			t.Setenv("PATH", path)
			want, wantErr := exec.LookPath(name)
			got, err := LookPath(name, path)
			if (err == nil) != (wantErr == nil) || (err == nil && got != want) || (errors.Is(wantErr, exec.ErrDot) != errors.Is(err, exec.ErrDot)) {
				t.Errorf("PATH=%q %q: LookPath = %q, %v; os/exec says %q, %v", path, name, got, err, want, wantErr)
			}
		}
	}
}
