package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/batonhq/baton/bench/load"
)

// pprofEnv names the unix socket the profiling build of baton serves pprof
// on.
const pprofEnv = "BATON_BENCH_PPROF"

// pprofSource is added to cmd/baton, for the profiling build only, with go
// build -overlay: the tree never holds it. It serves net/http/pprof on the
// unix socket named by BATON_BENCH_PPROF, in "baton run" only (the unit's
// ExecReload= "baton reload" gets the same environment), and removes the
// variable at once, so that neither the exec shim (baton re-executed) nor
// the workers see it.
const pprofSource = `package main

import (
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

func init() {
	path := os.Getenv("` + pprofEnv + `")
	if path == "" || len(os.Args) < 2 || os.Args[1] != "run" {
		return
	}
	_ = os.Unsetenv("` + pprofEnv + `")
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	go func() { _ = http.Serve(l, mux) }()
}
`

// pprofOverlay writes the source and the overlay that adds it to
// cmd/baton, and returns the overlay's path.
func pprofOverlay(dir string) (string, error) {
	root, err := load.ModuleRoot()
	if err != nil {
		return "", err
	}
	src := filepath.Join(dir, "benchpprof.go")
	if err := os.WriteFile(src, []byte(pprofSource), 0o644); err != nil {
		return "", err
	}
	b, err := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(root, "cmd", "baton", "zz_benchpprof.go"): src}})
	if err != nil {
		return "", err
	}
	overlay := filepath.Join(dir, "overlay.json")
	return overlay, os.WriteFile(overlay, b, 0o644)
}

func (e *env) pprofSocket(p pool) string { return filepath.Join(e.dir, p.unit+".pprof.sock") }

// profile takes a CPU profile of the window's length, when profiling.
func (e *env) profile(r *row, p pool, phase string) {
	if wait := e.profileAsync(r, p, phase); wait != nil {
		wait()
	}
}

// profileAsync starts a CPU profile of the window's length and returns a
// function that waits for it; nil when not profiling.
func (e *env) profileAsync(r *row, p pool, phase string) func() {
	if e.opts.profileDir == "" {
		return nil
	}
	done := make(chan profile, 1)
	errc := make(chan error, 1)
	go func() {
		pr, err := e.takeProfile(p, fmt.Sprintf("%s-%d-%s", strings.Fields(r.server)[0], r.workers, phase))
		pr.phase = phase
		done <- pr
		errc <- err
	}()
	return func() {
		pr := <-done
		if err := <-errc; err != nil {
			r.errs = append(r.errs, fmt.Sprintf("profile %s: %v", phase, err))
			return
		}
		r.profiles = append(r.profiles, pr)
	}
}

func (e *env) takeProfile(p pool, name string) (profile, error) {
	sock := e.pprofSocket(p)
	client := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	secs := int(e.opts.window / time.Second)
	if secs < 1 {
		secs = 1
	}
	resp, err := client.Get(fmt.Sprintf("http://baton/debug/pprof/profile?seconds=%d", secs))
	if err != nil {
		return profile{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return profile{}, fmt.Errorf("pprof: %s: %s", resp.Status, b)
	}
	if err := os.MkdirAll(e.opts.profileDir, 0o755); err != nil {
		return profile{}, err
	}
	path := filepath.Join(e.opts.profileDir, name+".pprof")
	f, err := os.Create(path)
	if err != nil {
		return profile{}, err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return profile{}, err
	}
	if err := f.Close(); err != nil {
		return profile{}, err
	}
	// Go's profiles carry their symbols: the binary, gone with the
	// temporary directory, is not needed to read them later.
	top, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=30", e.baton, path).CombinedOutput()
	if err != nil {
		return profile{path: path}, fmt.Errorf("go tool pprof: %v: %s", err, top)
	}
	return profile{path: path, top: string(top)}, nil
}
