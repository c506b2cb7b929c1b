package procfs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// stat returns the fields of /proc/PID/stat after the command name, which
// may itself hold spaces and parentheses: fields resume after the last ')'.
// Field 0 is the state, field 1 the parent pid.
func stat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// Parent returns pid's parent pid, or -1 when pid is gone.
func Parent(pid int) int {
	f := stat(pid)
	if len(f) < 2 {
		return -1
	}
	pp, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return pp
}

// Comm returns pid's command name (at most 15 bytes), "" when pid is gone.
func Comm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(b), "\n")
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	f := stat(pid)
	return len(f) > 0 && f[0] != "Z"
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's start time: 100 on
// every Linux architecture Go supports (sysconf(_SC_CLK_TCK) reports it).
const clockTicks = 100

// Started returns when pid started, to the clock tick; zero when pid is
// gone. Together with the pid it names a process even after the pid is
// reused.
func Started(pid int) time.Time {
	f := stat(pid)
	// starttime is field 22 of stat(5); f starts at field 3.
	if len(f) < 20 {
		return time.Time{}
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return time.Time{}
	}
	boot := bootTime()
	if boot.IsZero() {
		return time.Time{}
	}
	return boot.Add(time.Duration(ticks) * time.Second / clockTicks)
}

// bootTime is btime from /proc/stat, to the second.
func bootTime() time.Time {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(sec, 0)
			}
		}
	}
	return time.Time{}
}

// RSS returns pid's resident memory in bytes, from /proc/PID/statm.
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/statm: %q", pid, b)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/statm: %w", pid, err)
	}
	return pages * int64(os.Getpagesize()), nil
}

// Descendants lists pid's descendants, breadth first, at most limit.
func Descendants(pid, limit int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 && len(out) < limit {
		p := queue[0]
		queue = queue[1:]
		kids, _ := Children(p)
		for _, c := range kids {
			if len(out) >= limit {
				break
			}
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// TreeRSS is the resident memory of pid and its descendants, summed:
// pages they share (a pre-forked server's copy-on-write memory) count once
// per process, so it overstates what killing the tree would free.
func TreeRSS(pid int) (int64, error) {
	total, err := RSS(pid)
	if err != nil {
		return 0, err
	}
	for _, c := range Descendants(pid, 4096) {
		if n, err := RSS(c); err == nil {
			total += n
		}
	}
	return total, nil
}

// Unit returns the systemd service unit pid runs in ("app.service"), read
// from its cgroup path in /proc/PID/cgroup, or "" when it runs in none.
// The innermost *.service component counts, so that a sub-cgroup of the
// service's own (Delegate=) still names it. The unified hierarchy ("0::")
// is read first, then the named systemd hierarchy of a hybrid setup.
func Unit(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return ""
	}
	return unitOf(string(b))
}

func unitOf(cgroups string) string {
	var unified, named string
	for _, line := range strings.Split(cgroups, "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctl, path, ok := strings.Cut(rest, ":")
		switch {
		case !ok:
		case id == "0" && ctl == "":
			unified = path
		case ctl == "name=systemd":
			named = path
		}
	}
	for _, path := range []string{unified, named} {
		parts := strings.Split(path, "/")
		for i := len(parts) - 1; i >= 0; i-- {
			if strings.HasSuffix(parts[i], ".service") {
				return parts[i]
			}
		}
	}
	return ""
}
