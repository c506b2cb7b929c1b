package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of /proc's clock-tick fields: USER_HZ, which Linux
// fixes at 100 for what it exports to user space.
const userHZ = 100

// Sample is one reading of a process.
type Sample struct {
	PID int
	At  time.Time
	// CPU is user plus system time of all its threads so far (10 ms
	// resolution).
	CPU time.Duration
	// RSS is resident memory (VmRSS), in bytes.
	RSS int64
	// Threads and FDs count its threads and open file descriptors.
	Threads, FDs int
}

// Read samples pid.
func Read(pid int) (Sample, error) {
	s := Sample{PID: pid, At: time.Now()}
	dir := "/proc/" + strconv.Itoa(pid)
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return s, err
	}
	// Fields resume after the command name's closing parenthesis: state is
	// field 3 of proc(5), utime 14 and stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, fmt.Errorf("%s/stat: no command name in %q", dir, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("%s/stat: %d fields", dir, len(f))
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return s, fmt.Errorf("%s/stat: %w", dir, err)
		}
		ticks += n
	}
	s.CPU = time.Duration(ticks) * time.Second / userHZ
	status, err := readFields(dir+"/status", "VmRSS:", "Threads:")
	if err != nil {
		return s, err
	}
	s.RSS = status["VmRSS:"] * 1024
	s.Threads = int(status["Threads:"])
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return s, err
	}
	s.FDs = len(fds)
	return s, nil
}

// Share is the fraction of one core the process used from a to b.
func Share(a, b Sample) float64 {
	wall := b.At.Sub(a.At)
	if wall <= 0 {
		return 0
	}
	return float64(b.CPU-a.CPU) / float64(wall)
}

// PSS is pid's proportional set size in bytes: its resident memory with
// each shared page divided among the processes that map it, so that the
// PSS of many processes adds up to the memory they really use.
func PSS(pid int) (int64, error) {
	f, err := readFields("/proc/"+strconv.Itoa(pid)+"/smaps_rollup", "Pss:")
	if err != nil {
		return 0, err
	}
	return f["Pss:"] * 1024, nil
}

// readFields reads "Key: value kB" lines of a /proc file.
func readFields(path string, keys ...string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		for _, k := range keys {
			if f[0] == k {
				n, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil {
					return nil, fmt.Errorf("%s: %s: %w", path, k, err)
				}
				out[k] = n
			}
		}
	}
	for _, k := range keys {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("%s: no %s line", path, k)
		}
	}
	return out, nil
}

// Machine is the whole machine's CPU time so far, summed over its CPUs,
// from the first line of /proc/stat.
type Machine struct {
	At time.Time
	// Busy is every state but idle and iowait; Total includes them.
	Busy, Total time.Duration
}

// ReadMachine samples the machine.
func ReadMachine() (Machine, error) {
	m := Machine{At: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return m, fmt.Errorf("/proc/stat: first line %q", line)
	}
	// user nice system idle iowait irq softirq steal [guest guest_nice,
	// already counted in user and nice].
	for i, v := range f[1:] {
		if i >= 8 {
			break
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc/stat: %w", err)
		}
		d := time.Duration(n) * time.Second / userHZ
		m.Total += d
		if i != 3 && i != 4 {
			m.Busy += d
		}
	}
	return m, nil
}
