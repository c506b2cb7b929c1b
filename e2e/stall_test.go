package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/procfs"
	"github.com/batonhq/baton/internal/testutil"
)

// baton itself stopped for seconds (SIGSTOP, then SIGCONT) while its
// workers keep beating: it reads the heartbeats that arrived meanwhile
// before it judges any watchdog, and kills no healthy worker. The workers
// serve throughout, since baton is not in the requests' path.
func TestStalledBatonKillsNoHealthyWorker(t *testing.T) {
	port := freePort(t)
	s := newService(t, "stall",
		fmt.Sprintf("Type=notify\nNotifyAccess=main\nKillMode=mixed\nExecStart=%s run -w 4 --watchdog-timeout 1s -- %s\n", batonBin, helloBin),
		fmt.Sprintf("ListenStream=127.0.0.1:%d\nFileDescriptorName=web\n", port))
	s.systemctl("start", s.name+".socket", s.name+".service")
	mainPID, err := strconv.Atoi(s.show("MainPID"))
	if err != nil {
		t.Fatal(err)
	}
	before, err := procfs.Children(mainPID)
	if err != nil || len(before) != 4 {
		t.Fatalf("workers %v: %v", before, err)
	}
	l := startLoad(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 4)
	l.waitServed(100)
	for _, stall := range []time.Duration{1500 * time.Millisecond, 5 * time.Second} {
		if err := syscall.Kill(mainPID, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		if !testutil.Eventually(t, 10*time.Second, func() bool { return procState(mainPID) == "T" }) {
			t.Fatal("baton did not stop")
		}
		time.Sleep(stall) // the fault itself, not a wait for a condition
		if err := syscall.Kill(mainPID, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		// The workers keep beating; a few watchdog intervals later, every
		// one of them is still the same process.
		l.waitServed(200)
		s.waitFor("baton to notice its stall", 20*time.Second, func() bool {
			return strings.Count(s.readLog(), "baton did not run for") >= 1
		})
		time.Sleep(3 * time.Second) // several watchdog intervals after the grace
	}
	l.finish()
	after, _ := procfs.Children(mainPID)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("workers %v became %v", before, after)
	}
	if log := s.readLog(); strings.Contains(log, "watchdog-timeout") {
		t.Errorf("a healthy worker's watchdog fired after the stall:\n%s", log)
	}
}
