package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

type statusJSON struct {
	Generation int    `json:"generation"`
	Status     string `json:"status"`
	Pool       []struct {
		Slot      int      `json:"slot"`
		PID       int      `json:"pid"`
		State     string   `json:"state"`
		Heartbeat *float64 `json:"heartbeat_age_seconds"`
		RSS       *int64   `json:"resident_memory_bytes"`
	} `json:"pool"`
	Sockets []struct {
		Name, Address, Origin string
	} `json:"sockets"`
	Reloads []struct {
		Generation int  `json:"generation"`
		OK         bool `json:"ok"`
	} `json:"reloads"`
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := tryScrape(url)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// tryScrape reads and parses url's metrics.
func tryScrape(url string) (map[string]*dto.MetricFamily, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("metrics are not valid exposition text: %w", err)
	}
	return fams, nil
}

func value(fams map[string]*dto.MetricFamily, name, label, want string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.Metric {
		match := label == ""
		for _, l := range m.Label {
			if l.GetName() == label && l.GetValue() == want {
				match = true
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Summary != nil:
			return float64(m.Summary.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestStatusAndMetrics(t *testing.T) {
	mport := freePort(t)
	r := newReloadService(t, "ops", fmt.Sprintf("command = [\"HELLO\"]\nworkers = 2\nwatchdog-timeout = \"5s\"\nmetrics-socket = \"metrics\"\n\n[sockets.metrics]\nlisten = \"tcp://127.0.0.1:%d\"\n", mport))
	r.systemctl("reload", r.name+".service")
	control := filepath.Join(mgr.RuntimeDir, r.name, "control.sock")

	// baton status --json: a stable schema for tools.
	out, err := exec.Command(batonBin, "status", "--json", "--control", control).Output()
	if err != nil {
		t.Fatal(err)
	}
	var st statusJSON
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if st.Generation != 2 || st.Status != "2/2 workers ready, generation 2" || len(st.Reloads) != 1 || !st.Reloads[0].OK {
		t.Errorf("status: %s", out)
	}
	ready := 0
	for _, w := range st.Pool {
		if w.State == "ready" {
			ready++
			if w.Heartbeat == nil || w.RSS == nil || *w.RSS < 1<<20 || w.PID == 0 {
				t.Errorf("worker %+v lacks heartbeat or memory", w)
			}
		}
	}
	if ready != 2 || len(st.Sockets) != 1 || st.Sockets[0].Name != "web" || st.Sockets[0].Origin != "inherited" {
		t.Errorf("pool or sockets: %s", out)
	}
	// ... and tables for people.
	out, err = exec.Command(batonBin, "status", "--control", control).Output()
	if err != nil || !strings.Contains(string(out), "SLOT  PID") || !strings.Contains(string(out), "web     tcp://127.0.0.1:") {
		t.Errorf("table: %v\n%s", err, out)
	}

	// The metrics socket is baton's, not the workers'.
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", st.Pool[0].PID))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), "LISTEN_FDNAMES=web\x00") {
		t.Errorf("worker environment: %q", env)
	}

	murl := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	fams := scrape(t, murl)
	for name, want := range map[string]float64{"baton_workers_wanted": 2, "baton_generation": 2} {
		if v, ok := value(fams, name, "", ""); !ok || v != want {
			t.Errorf("%s = %v (%v), want %v", name, v, ok, want)
		}
	}
	if v, _ := value(fams, "baton_workers", "state", "ready"); v != 2 {
		t.Errorf("ready workers %v", v)
	}
	if v, _ := value(fams, "baton_reloads_total", "result", "ok"); v != 1 {
		t.Errorf("reloads %v", v)
	}
	for _, name := range []string{"baton_worker_heartbeat_age_seconds", "baton_worker_age_seconds", "baton_worker_resident_memory_bytes", "baton_reload_duration_seconds", "go_goroutines"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	crashes, _ := value(fams, "baton_worker_exits_total", "reason", "crash")
	spawns, _ := value(fams, "baton_worker_spawns_total", "", "")

	// A killed worker moves the counters.
	if err := syscall.Kill(st.Pool[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r.waitFor("the crash counted and the worker replaced", 20*time.Second, func() bool {
		f := scrape(t, murl)
		c, _ := value(f, "baton_worker_exits_total", "reason", "crash")
		s, _ := value(f, "baton_worker_spawns_total", "", "")
		rdy, _ := value(f, "baton_workers", "state", "ready")
		return c == crashes+1 && s == spawns+1 && rdy == 2
	})
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", mport))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("metrics socket serves %s at /", strconv.Itoa(resp.StatusCode))
		}
	}
}

func TestCheckAgainstTheUnit(t *testing.T) {
	cfg := filepath.Join(workDir, "check.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("command = [%q]\nworkers = 2\n\n[sockets.web]\nlisten = \"tcp://127.0.0.1:8080\"\n", helloBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	good := "Type=notify\nNotifyAccess=main\nKillMode=mixed\nWatchdogSec=30\nTimeoutStopSec=45\nFileDescriptorStoreMax=16\nExecStart=/bin/true\nExecReload=/bin/true\n"
	for _, tc := range []struct {
		name, unit string
		code       int
		want       []string
	}{
		{"check-good", good, 0, []string{"check-good.service: consistent with the config"}},
		{"check-short", strings.Replace(good, "TimeoutStopSec=45", "TimeoutStopSec=5", 1), 1, []string{
			"check-short.service: error: TimeoutStopSec=5s of check-short.service is shorter than graceful-timeout 30s plus timeout-grace 5s",
			"set TimeoutStopSec=40s in [Service]",
		}},
		{"check-nostore", strings.Replace(good, "FileDescriptorStoreMax=16\n", "", 1), 1, []string{
			"check-nostore.service: error: baton binds web itself (no .socket unit passes it) but FileDescriptorStoreMax=0",
			"set FileDescriptorStoreMax=16 in [Service]",
		}},
		{"check-cgroup", strings.Replace(good, "KillMode=mixed", "KillMode=control-group", 1), 1, []string{"KillMode=control-group: systemctl stop sends SIGTERM to every worker at once"}},
	} {
		if err := mgr.WriteUnit(ctx(t), tc.name+".service", "[Service]\n"+tc.unit); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(batonBin, "check", "-c", cfg, "--unit", tc.name+".service")
		cmd.Env = mgr.Env()
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d\n%s", tc.name, code, tc.code, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.name, w, out)
			}
		}
	}
	// A bad config is reported with its position, before any unit check.
	if err := os.WriteFile(cfg, []byte("workers = 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(batonBin, "check", "-c", cfg).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), cfg+":1:1: workers: 0: must be at least 1") {
		t.Errorf("bad config: %v\n%s", err, out)
	}
}
