package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stat is what baton reads from /proc/PID/stat.
type Stat struct {
	State byte // 'R', 'S', 'D', 'Z', 'T', ...
	PPID  int
	PGID  int
	SID   int
	// Start is when the process started, in clock ticks after boot. With
	// the pid it names one process: a pid can be reused, a (pid, start)
	// pair cannot.
	Start uint64
}

// Zombie reports whether the process has exited and awaits its reaper.
func (s Stat) Zombie() bool { return s.State == 'Z' || s.State == 'X' }

// ReadStat reads pid's /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	f := stat(pid)
	// Fields after the command: 0 state, 1 ppid, 2 pgrp, 3 session, ...,
	// 19 starttime (proc(5) numbers them from 1 with the pid and comm first).
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("read /proc/%d/stat: %w", pid, os.ErrNotExist)
	}
	var st Stat
	st.State = f[0][0]
	var err error
	if st.PPID, err = strconv.Atoi(f[1]); err != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat: ppid %q", pid, f[1])
	}
	if st.PGID, err = strconv.Atoi(f[2]); err != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat: pgrp %q", pid, f[2])
	}
	if st.SID, err = strconv.Atoi(f[3]); err != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat: session %q", pid, f[3])
	}
	if st.Start, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat: starttime %q", pid, f[19])
	}
	return st, nil
}

// Children lists pid's children. A child belongs to the thread that forked
// it (or, once re-parented, to whichever thread of the reaper the kernel
// picked), so every thread's /proc/PID/task/TID/children is read. Kernels
// built without CONFIG_PROC_CHILDREN lack those files; then every process
// in /proc is checked for its parent, which costs a read per process.
func Children(pid int) ([]int, error) {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil, fmt.Errorf("children of %d: %w", pid, err)
	}
	var kids []int
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", t.Name(), "children"))
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Stat(filepath.Join("/proc", strconv.Itoa(pid), "task", t.Name())); serr == nil {
				return scanChildren(pid)
			}
			continue // the thread exited meanwhile
		}
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				kids = append(kids, n)
			}
		}
	}
	return kids, nil
}

func scanChildren(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("children of %d: %w", pid, err)
	}
	var kids []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err == nil && Parent(p) == pid {
			kids = append(kids, p)
		}
	}
	return kids, nil
}

// maxEnviron bounds how much of a process's environment Getenv reads.
const maxEnviron = 1 << 20

// Getenv returns the value of key in the environment pid was executed with
// (/proc/PID/environ: what execve(2) got, not later setenv calls). ok is
// false when the key is absent or the environment cannot be read (another
// user's process, a process that is not dumpable, a zombie).
func Getenv(pid int, key string) (value string, ok bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return "", false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEnviron))
	if err != nil {
		return "", false
	}
	prefix := []byte(key + "=")
	for _, kv := range bytes.Split(b, []byte{0}) {
		if bytes.HasPrefix(kv, prefix) {
			return string(kv[len(prefix):]), true
		}
	}
	return "", false
}
