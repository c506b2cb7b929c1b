package execcheck

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

const (
	// bufSize is how much of a file the kernel reads to pick its format
	// (BINPRM_BUF_SIZE), and so the most of a #! line it sees.
	bufSize = 256
	// maxInterpreters is how many interpreters in a row (scripts run by
	// scripts) the kernel follows before execve fails with ELOOP: the depth
	// limit of exec_binprm in fs/exec.c.
	maxInterpreters = 5
	// maxHops bounds the programs followed through "#!/usr/bin/env NAME",
	// which are new execs, so that a loop of such scripts ends.
	maxHops = 8
)

// format checks what the kernel does with the file at path once it opened
// it: its #! interpreter or ELF dynamic loader must exist and be
// executable, or a binfmt_misc handler must exist for it. depth counts the
// kernel's interpreter nesting, hops the programs started through env.
// shFallback is set for programs env starts: execvp(3) runs a file of no
// known format with /bin/sh, so that is no failure. A nil cause means
// nothing known fails.
func format(path, pathEnv string, depth, hops int, shFallback bool) (detail string, cause error) {
	f, err := os.Open(path)
	if err != nil {
		// An executable the user cannot read can still be executed (an
		// ELF binary); nothing certain to report.
		return "", nil
	}
	defer f.Close()
	head := make([]byte, bufSize)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", nil
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("#!")):
		return script(head, pathEnv, depth, hops)
	case bytes.HasPrefix(head, []byte(elf.ELFMAG)):
		return elfBinary(f)
	case shFallback:
		return "", nil
	}
	if handlers, known := binfmtMisc(); handlers || (!known && !looksText(head)) {
		// A binfmt_misc handler may take it (or we cannot tell, and it
		// does not look like a script that lost its #! line).
		return "", nil
	}
	return "exec format error: neither an ELF binary nor a script starting with a #! line (a script needs one naming its interpreter, such as #!/bin/sh)", syscall.ENOEXEC
}

// script checks a #! line as binfmt_script(5) parses it: the interpreter
// is the first word (spaces or tabs around it), the rest of the line is one
// argument; the interpreter is a path, never searched in PATH.
func script(head []byte, pathEnv string, depth, hops int) (string, error) {
	line := head[2:]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	} else if len(head) == bufSize && !bytes.ContainsAny(bytes.TrimLeft(line, " \t"), " \t\x00") {
		return fmt.Sprintf("its #! line is longer than the %d bytes the kernel reads", bufSize-1), syscall.ENOEXEC
	}
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	text := strings.Trim(string(line), " \t")
	interp, arg, _ := strings.Cut(strings.Map(func(r rune) rune {
		if r == '\t' {
			return ' '
		}
		return r
	}, text), " ")
	arg = strings.Trim(arg, " ")
	if interp == "" {
		return "its #! line names no interpreter", syscall.ENOEXEC
	}
	shebang := "#!" + text
	if err := executable(interp); err != nil {
		detail := fmt.Sprintf("its interpreter %s (%q): %s", interp, shebang, explain(interp, err))
		if strings.HasSuffix(interp, "\r") {
			detail = fmt.Sprintf("its #! line ends in a carriage return (Windows line endings), so the kernel looks for an interpreter named %q: convert the file to Unix line endings", interp)
		}
		return detail, errnoOf(err)
	}
	if depth+1 > maxInterpreters {
		return fmt.Sprintf("its interpreter %s is a script, whose interpreter is a script, and so on, deeper than the kernel follows", interp), syscall.ELOOP
	}
	if detail, cause := format(interp, pathEnv, depth+1, hops, false); cause != nil {
		return fmt.Sprintf("its interpreter %s (%q): %s", interp, shebang, detail), cause
	}
	if filepath.Base(interp) != "env" || hops+1 >= maxHops {
		return "", nil
	}
	name, envPath, ok := envProgram(arg)
	if !ok {
		return "", nil
	}
	if envPath == "" {
		envPath = pathEnv
	}
	target, why, cause := execvpLook(name, envPath)
	if cause != nil {
		detail := fmt.Sprintf("%q runs env, which cannot execute %q: %s", shebang, name, why)
		if strings.ContainsAny(name, " \t") {
			detail += fmt.Sprintf(" (the kernel passes everything after the interpreter as one argument; write \"#!%s -S %s\")", interp, arg)
		}
		return detail, cause
	}
	if detail, cause := format(target, envPath, 0, hops+1, true); cause != nil {
		return fmt.Sprintf("%q runs %s: %s", shebang, target, detail), cause
	}
	return "", nil
}

// envProgram returns the program env(1) executes given the one argument of
// a #! line, and a PATH the line sets for it; ok is false when the line
// uses env in a way not followed here (options, quoting, no program).
func envProgram(arg string) (name, pathEnv string, ok bool) {
	words := []string{arg} // the kernel passes one argument
	if rest, split := strings.CutPrefix(arg, "-S"); split {
		if strings.ContainsAny(rest, "\"'\\$#") {
			return "", "", false
		}
		words = strings.Fields(rest)
	}
	for len(words) > 0 && strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-") {
		if v, isPath := strings.CutPrefix(words[0], "PATH="); isPath {
			pathEnv = v
		}
		words = words[1:]
	}
	if len(words) == 0 || words[0] == "" || strings.HasPrefix(words[0], "-") {
		return "", "", false
	}
	return words[0], pathEnv, true
}

// execvpLook finds name as execvp(3) does, which env uses: a name with a
// slash is a path; otherwise the first executable match in PATH (relative
// entries allowed; an unset or empty PATH is glibc's default). On failure
// it returns the errno and the reason in words.
func execvpLook(name, pathEnv string) (path, detail string, cause error) {
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", explain(name, err), errnoOf(err)
		}
		return name, "", nil
	}
	if pathEnv == "" {
		pathEnv = "/bin:/usr/bin"
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		if p := filepath.Join(dir, name); executable(p) == nil {
			return p, "", nil
		}
	}
	return "", "not found in PATH=" + pathEnv, syscall.ENOENT
}

// elfBinary checks an ELF executable: built for a machine this kernel runs,
// and with its dynamic loader (PT_INTERP) present, which execve otherwise
// reports as a bewildering ENOENT for a file that exists.
func elfBinary(f *os.File) (string, error) {
	ef, err := elf.NewFile(f)
	if err != nil {
		return "", nil
	}
	if native, ok := nativeMachines[runtime.GOARCH]; ok && !native[ef.Machine] {
		if handlers, known := binfmtMisc(); known && !handlers {
			return fmt.Sprintf("exec format error: an ELF binary for %s, and this machine runs %s", strings.TrimPrefix(ef.Machine.String(), "EM_"), runtime.GOARCH), syscall.ENOEXEC
		}
	}
	for _, p := range ef.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p.Open(), 4096))
		if err != nil {
			return "", nil
		}
		interp := strings.TrimRight(string(b), "\x00")
		if err := executable(interp); err != nil {
			return fmt.Sprintf("its ELF interpreter (dynamic loader) %s: %s: it was built for another system (another C library or distribution); build it there or statically", interp, explain(interp, err)), errnoOf(err)
		}
	}
	return "", nil
}

// nativeMachines are the ELF machines each architecture's kernel executes
// without binfmt_misc (compat modes included).
var nativeMachines = map[string]map[elf.Machine]bool{
	"amd64": {elf.EM_X86_64: true, elf.EM_386: true},
	"386":   {elf.EM_386: true},
	"arm64": {elf.EM_AARCH64: true, elf.EM_ARM: true},
}

// binfmtDir is where binfmt_misc is mounted; tests point it elsewhere.
var binfmtDir = "/proc/sys/fs/binfmt_misc"

// binfmtMisc reports whether binfmt_misc(7) has any enabled handler, which
// may execute files of formats the kernel does not know itself; known is
// false when that cannot be told (binfmt_misc not mounted here).
func binfmtMisc() (handlers, known bool) {
	dir := binfmtDir
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return false, false
	}
	if strings.TrimSpace(string(status)) != "enabled" {
		return false, true
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, false
	}
	for _, e := range ents {
		if e.Name() == "status" || e.Name() == "register" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || strings.HasPrefix(string(b), "enabled") {
			return true, true
		}
	}
	return false, true
}

// looksText reports whether head looks like the start of a text file (no
// NUL byte), such as a script without its #! line.
func looksText(head []byte) bool {
	return bytes.IndexByte(head, 0) < 0
}
