package host

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// systemdDgramQlen is net.unix.max_dgram_qlen as systemd sets it at boot.
const systemdDgramQlen = 512

const dgramQlenPath = "/proc/sys/net/unix/max_dgram_qlen"

// Prepare raises net.unix.max_dgram_qlen to systemd's value when it is
// lower, and says what it did ("" when nothing). Sockets created before
// keep their queue length: call it before starting any service.
func Prepare() (string, error) {
	qlen, err := readInt(dgramQlenPath)
	if err != nil {
		return "", err
	}
	if qlen >= systemdDgramQlen {
		return "", nil
	}
	if err := os.WriteFile(dgramQlenPath, []byte(strconv.Itoa(systemdDgramQlen)), 0o644); err != nil {
		return "", fmt.Errorf("raise net.unix.max_dgram_qlen from %d to %d as systemd does at boot: %w", qlen, systemdDgramQlen, err)
	}
	return fmt.Sprintf("raised net.unix.max_dgram_qlen from %d to %d, as systemd does when it boots a machine", qlen, systemdDgramQlen), nil
}

// Describe is the machine's state for a benchmark's header: CPUs, load
// average and the settings Prepare looks after.
func Describe() string {
	qlen, err := readInt(dgramQlenPath)
	q := strconv.Itoa(qlen)
	if err != nil {
		q = "?"
	}
	return fmt.Sprintf("%d CPUs, load average %s, net.unix.max_dgram_qlen %s", runtime.NumCPU(), LoadAverage(), q)
}

// LoadAverage is /proc/loadavg's 1, 5 and 15-minute figures.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// LoadAverage1 is the 1-minute figure alone, for a table's column.
func LoadAverage1() string {
	return strings.Fields(LoadAverage() + " ")[0]
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// ListenDrops is how many connections the machine's TCP listeners have
// dropped since boot (TcpExt ListenDrops in /proc/net/netstat: a full
// accept queue, or no memory): a client's connect that times out while
// this stays put was not refused by a full backlog.
func ListenDrops() (int64, error) {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0, err
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) || values[0] != "TcpExt:" {
			continue
		}
		for j, n := range names {
			if n == "ListenDrops" {
				return strconv.ParseInt(values[j], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("/proc/net/netstat: no TcpExt ListenDrops")
}
