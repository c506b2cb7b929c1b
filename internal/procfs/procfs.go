package procfs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
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

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	f := stat(pid)
	return len(f) > 0 && f[0] != "Z"
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
