package host

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestPrepareAndDescribe lowers the queue length below systemd's (as on a
// machine systemd did not boot), lets Prepare raise it, and puts the
// machine's value back.
func TestPrepareAndDescribe(t *testing.T) {
	was, err := readInt(dgramQlenPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(dgramQlenPath, []byte(strconv.Itoa(was)), 0o644); err != nil {
			t.Error(err)
		}
	})
	if err := os.WriteFile(dgramQlenPath, []byte("10"), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := Prepare(); err != nil || !strings.Contains(msg, "from 10 to 512") {
		t.Fatalf("Prepare: %q, %v", msg, err)
	}
	qlen, err := readInt(dgramQlenPath)
	if err != nil {
		t.Fatal(err)
	}
	if qlen < systemdDgramQlen {
		t.Errorf("net.unix.max_dgram_qlen %d after Prepare, want at least %d", qlen, systemdDgramQlen)
	}
	// A second call has nothing to do.
	if msg, err := Prepare(); err != nil || msg != "" {
		t.Errorf("second Prepare: %q, %v", msg, err)
	}
	d := Describe()
	if strings.Contains(d, "?") || strings.HasPrefix(d, "0 CPUs") {
		t.Errorf("Describe = %q", d)
	}
	if LoadAverage1() == "?" || strings.Contains(LoadAverage1(), " ") {
		t.Errorf("LoadAverage1 = %q", LoadAverage1())
	}
}

func TestListenDrops(t *testing.T) {
	if n, err := ListenDrops(); err != nil || n < 0 {
		t.Errorf("ListenDrops = %d, %v", n, err)
	}
}
