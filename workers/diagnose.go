package workers

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/fdutil"
	"github.com/batonhq/baton/internal/procfs"
	"golang.org/x/sys/unix"
)

// diagnoseBoot explains a boot clock that expired without READY=1: is the
// worker serving anyway (it does not speak sd_notify), does it listen on
// its own address instead of the socket baton passed, or did it close
// that socket. Read from /proc once, when the clock expires.
func (s *Supervisor) diagnoseBoot(w *worker) string {
	if w.cfg.Readiness != config.ReadinessNotify {
		return ""
	}
	ours := map[uint64]string{} // socket inode → name
	ports := map[int]string{}
	for _, x := range w.sockets {
		var st unix.Stat_t
		if fd, err := fdutil.Raw(x.File); err == nil && unix.Fstat(fd, &st) == nil {
			ours[st.Ino] = x.Name
		}
		if i := strings.LastIndexByte(x.Addr, ':'); i >= 0 && strings.HasPrefix(x.Addr, "tcp://") {
			if p, err := strconv.Atoi(x.Addr[i+1:]); err == nil {
				ports[p] = x.Name
			}
		}
	}
	held := map[uint64]bool{}
	for _, pid := range append([]int{w.pid}, procfs.Descendants(w.pid, 256)...) {
		for _, ino := range socketInodes(pid) {
			held[ino] = true
		}
	}
	serving, listening := map[string]int{}, []string(nil)
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		for _, e := range tcpTable(file) {
			if !held[e.inode] {
				continue
			}
			switch {
			case e.state == tcpEstablished && ports[e.port] != "":
				serving[ports[e.port]]++
			case e.state == tcpListen && ours[e.inode] == "":
				listening = append(listening, e.local)
			}
		}
	}
	keeps := false
	for ino := range ours {
		keeps = keeps || held[ino]
	}
	var notes []string
	for name, n := range serving {
		notes = append(notes, fmt.Sprintf("it is serving %d connections on %s without having sent READY=1", n, name))
	}
	if len(listening) > 0 {
		notes = append(notes, "it listens on "+strings.Join(listening, ", ")+" itself instead of the socket baton passed")
	}
	if !keeps && len(ours) > 0 {
		notes = append(notes, "it closed the sockets baton passed")
	}
	if len(serving) == 0 && len(listening) == 0 && keeps {
		notes = append(notes, "it has accepted no connection")
	}
	hint := `if the program never sends READY=1 (sd_notify), set readiness = "exec" (--readiness exec)`
	if len(notes) == 0 {
		return "; " + hint
	}
	return "; " + strings.Join(notes, "; ") + "; " + hint
}

// socketInodes lists the inodes of the sockets pid holds.
func socketInodes(pid int) []uint64 {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []uint64
	for _, e := range ents {
		l, err := os.Readlink(dir + "/" + e.Name())
		if err != nil || !strings.HasPrefix(l, "socket:[") {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]"), 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out
}

const (
	tcpEstablished = 0x01
	tcpListen      = 0x0A
)

type tcpEntry struct {
	local string
	port  int
	state int
	inode uint64
}

// tcpTable parses /proc/net/tcp{,6}: "sl local rem st ... uid timeout inode".
func tcpTable(path string) []tcpEntry {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []tcpEntry
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 10 {
			continue
		}
		addr, portHex, ok := strings.Cut(fl[1], ":")
		if !ok {
			continue
		}
		port, err1 := strconv.ParseInt(portHex, 16, 32)
		st, err2 := strconv.ParseInt(fl[3], 16, 32)
		ino, err3 := strconv.ParseUint(fl[9], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out = append(out, tcpEntry{local: hexAddr(addr, int(port)), port: int(port), state: int(st), inode: ino})
	}
	return out
}

// hexAddr renders /proc/net/tcp's little-endian hex address.
func hexAddr(h string, port int) string {
	if len(h) == 8 {
		v, err := strconv.ParseUint(h, 16, 32)
		if err == nil {
			return fmt.Sprintf("%d.%d.%d.%d:%d", v&0xff, v>>8&0xff, v>>16&0xff, v>>24, port)
		}
	}
	if len(h) == 32 && strings.Trim(h, "0") == "" {
		return fmt.Sprintf("[::]:%d", port)
	}
	return fmt.Sprintf("[%s]:%d", h, port)
}
