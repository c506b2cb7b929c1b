// Package execcheck tells, before any worker is spawned, whether execve(2)
// of the worker command would fail, and why: a command not found on PATH,
// a file that is missing, a directory or not executable, a script whose
// #! interpreter is missing (including the program "#!/usr/bin/env NAME"
// looks for), an ELF binary whose dynamic loader is missing, or a file of
// no format the kernel can execute. Without it, a worker that cannot be
// executed only crash-loops.
//
// Commands are resolved exactly as baton's exec shim resolves them (Go's
// os/exec.LookPath, with the PATH and working directory workers inherit),
// and scripts as the kernel's binfmt_script does; see execve(2) and
// https://docs.kernel.org/admin-guide/binfmt-misc.html. It reports only
// what is certain to fail: an unknown case passes.
package execcheck
