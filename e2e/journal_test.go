package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeJournald stands in for systemd-journald's native socket inside the
// user manager's mount namespace (which has a private /run/systemd): it
// decodes each datagram of the native protocol and appends it, as a JSON
// object per line, to out.
func fakeJournald(out string) int {
	if err := os.MkdirAll("/run/systemd/journal", 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	path := "/run/systemd/journal/socket"
	os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintln(f, `{"READY":"1"}`)
	buf := make([]byte, 1<<20)
	oob := make([]byte, 1024)
	for {
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return 0
		}
		data := buf[:n]
		// Large entries come as a sealed memfd (SCM_RIGHTS).
		if msgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if fds, err := syscall.ParseUnixRights(&m); err == nil {
					for _, fd := range fds {
						mf := os.NewFile(uintptr(fd), "memfd")
						var b bytes.Buffer
						_, _ = b.ReadFrom(mf)
						mf.Close()
						data = b.Bytes()
					}
				}
			}
		}
		rec := map[string]string{}
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			name, err := r.ReadString('\n')
			if err != nil {
				break
			}
			name = strings.TrimSuffix(name, "\n")
			if k, v, ok := strings.Cut(name, "="); ok {
				rec[k] = v
				continue
			}
			var size uint64
			if err := binary.Read(r, binary.LittleEndian, &size); err != nil {
				break
			}
			v := make([]byte, size)
			if _, err := r.Read(v); err != nil {
				break
			}
			_, _ = r.ReadByte()
			rec[name] = string(v)
		}
		b, _ := json.Marshal(rec)
		fmt.Fprintln(f, string(b))
	}
}

func journalRecords(t *testing.T, path string) []map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec map[string]string
		if json.Unmarshal([]byte(line), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

func findRecord(recs []map[string]string, match func(map[string]string) bool) map[string]string {
	for _, r := range recs {
		if match(r) {
			return r
		}
	}
	return nil
}

// Under journald, every line carries its priority and baton's fields, and
// workers' own output is attributed to its worker.
func TestJournalPrioritiesAndFields(t *testing.T) {
	journalOut := filepath.Join(workDir, "journal.jsonl")
	os.Remove(journalOut)
	if err := mgr.WriteUnit(ctx(t), "fake-journald.service", fmt.Sprintf("[Service]\nEnvironment=BATON_E2E_FAKE_JOURNALD=%s\nExecStart=%s\n", journalOut, os.Args[0])); err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.Systemctl(ctx(t), "start", "fake-journald.service"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = mgr.Systemctl(ctx(t), "stop", "fake-journald.service") })
	deadline := time.Now().Add(10 * time.Second)
	for len(journalRecords(t, journalOut)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("fake journald did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// baton's stderr is "the journal's stream" as systemd would set it up.
	stream := filepath.Join(workDir, "journal-stream.log")
	os.Remove(stream)
	if err := os.WriteFile(stream, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(stream, &st); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	s := newService(t, "journal",
		fmt.Sprintf("Type=notify\nNotifyAccess=main\nKillMode=mixed\nStandardError=append:%s\nEnvironment=JOURNAL_STREAM=%d:%d\nExecStart=%s run -w 1 --request-timeout 500ms -- %s\n", stream, st.Dev, st.Ino, batonBin, helloBin),
		fmt.Sprintf("ListenStream=127.0.0.1:%d\nFileDescriptorName=web\n", port))
	s.systemctl("start", s.name+".socket", s.name+".service")
	if _, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/sleep?ms=5000", port)); err == nil {
		t.Fatal("the slow request survived its request-timeout")
	}
	var ladder, dump, ready map[string]string
	s.waitFor("the journal records", 20*time.Second, func() bool {
		recs := journalRecords(t, journalOut)
		ready = findRecord(recs, func(r map[string]string) bool { return strings.HasPrefix(r["MESSAGE"], "pool ready") })
		ladder = findRecord(recs, func(r map[string]string) bool { return r["BATON_CLOCK"] == "request" })
		dump = findRecord(recs, func(r map[string]string) bool { return r["MESSAGE"] == "SIGABRT: abort" })
		return ready != nil && ladder != nil && dump != nil
	})
	if ready["PRIORITY"] != "6" || ready["SYSLOG_IDENTIFIER"] != "baton" {
		t.Errorf("info record %v", ready)
	}
	if ladder["PRIORITY"] != "4" || ladder["BATON_WORKER"] != "1" || ladder["BATON_GENERATION"] != "1" || ladder["BATON_WORKER_PID"] == "" {
		t.Errorf("ladder record %v", ladder)
	}
	if dump["SYSLOG_IDENTIFIER"] != "hello" || dump["BATON_STREAM"] != "stderr" || dump["BATON_WORKER_PID"] != ladder["BATON_WORKER_PID"] {
		t.Errorf("worker output record %v (ladder %v)", dump, ladder)
	}
	// Nothing went to the stream itself: the journal got it all.
	if b, _ := os.ReadFile(stream); len(b) > 0 {
		t.Errorf("baton also wrote to its stderr:\n%s", b)
	}
}
