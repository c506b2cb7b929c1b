package load

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// FreePort finds a port on 127.0.0.1 that is free now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ModuleRoot finds the directory of go.mod, so that a benchmark runs from
// anywhere in the repository.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the benchmark inside the baton repository")
	}
	return filepath.Dir(mod), nil
}

// Build runs go build in the module root for each output in dir: targets
// maps an output name to go build's arguments before the package, and the
// package, e.g. {"baton": {"./cmd/baton"}, "v2": {"-ldflags", "...", "./cmd/baton"}}.
func Build(dir string, targets map[string][]string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	for name, args := range targets {
		pkg := args[len(args)-1]
		argv := append(append([]string{"build"}, args[:len(args)-1]...), "-o", filepath.Join(dir, name), pkg)
		cmd := exec.Command("go", argv...)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v: %s", name, err, b)
		}
	}
	return nil
}
