package workers

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"testing"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/sdnotify"
)

// TestMain makes the test binary its own exec shim and its own worker, as
// cmd/baton's main does for the real binary.
func TestMain(m *testing.M) {
	if IsShim(os.Args) {
		err := RunShim(os.Args)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(127)
	}
	if mode := os.Getenv("BATON_TEST_MODE"); mode != "" {
		os.Exit(testWorker(mode))
	}
	// As cmd/baton does: whatever the test runner leaked to us must not
	// reach workers.
	if err := activation.SealInheritedFDs(3); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

func notifyUp(state string) {
	s, err := sdnotify.SenderFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test worker:", err)
		os.Exit(3)
	}
	if err := s.Send(state); err != nil {
		fmt.Fprintln(os.Stderr, "test worker:", err)
		os.Exit(3)
	}
}

// testWorker is the worker side of these tests, chosen by BATON_TEST_MODE.
func testWorker(mode string) int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	waitTerm := func() int {
		<-term
		if d, err := time.ParseDuration(os.Getenv("BATON_TEST_TERM_DELAY")); err == nil {
			time.Sleep(d)
		}
		return 0
	}
	switch mode {
	case "ready":
		notifyUp("READY=1\nSTATUS=serving")
		return waitTerm()
	case "never-ready":
		return waitTerm()
	case "exec-ready":
		return waitTerm()
	case "exit1":
		return 1
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		notifyUp("READY=1")
		select {}
	case "report":
		report()
		notifyUp("READY=1")
		return waitTerm()
	case "serve":
		l, err := net.FileListener(os.NewFile(3, "web"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "test worker:", err)
			return 3
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "%d\n", os.Getpid())
				c.Close()
			}
		}()
		notifyUp("READY=1")
		return waitTerm()
	case "serve-silent":
		// Serves, holding every connection open, but never says READY=1:
		// a program that does not speak sd_notify.
		l, err := net.FileListener(os.NewFile(3, "web"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "test worker:", err)
			return 3
		}
		go func() {
			var held []net.Conn
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				held = append(held, c)
			}
		}()
		return waitTerm()
	case "child-ready":
		// A descendant reports readiness, as a shell script running
		// systemd-notify does.
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "BATON_TEST_MODE=send-ready")
		if err := cmd.Run(); err != nil {
			return 3
		}
		return waitTerm()
	case "heartbeat":
		// READY=1, then BATON_TEST_HEARTBEATS heartbeats 50ms apart (forever
		// when unset), then silence while still running.
		n, err := strconv.Atoi(os.Getenv("BATON_TEST_HEARTBEATS"))
		if err != nil {
			n = -1
		}
		notifyUp("READY=1")
		if os.Getenv("BATON_TEST_REQUEST") != "" {
			notifyUp("X_BATON_REQUEST_BEGIN=" + os.Getenv("BATON_TEST_REQUEST"))
		}
		go func() {
			for i := 0; n < 0 || i < n; i++ {
				time.Sleep(50 * time.Millisecond)
				notifyUp("WATCHDOG=1")
			}
		}()
		return waitTerm()
	case "trigger":
		notifyUp("READY=1")
		time.Sleep(50 * time.Millisecond)
		notifyUp("WATCHDOG=trigger")
		return waitTerm()
	case "extend-boot":
		notifyUp("EXTEND_TIMEOUT_USEC=10000000")
		time.Sleep(2500 * time.Millisecond)
		notifyUp("READY=1")
		return waitTerm()
	case "ready-then-exit":
		notifyUp("READY=1")
		life := 150 * time.Millisecond
		if d, err := time.ParseDuration(os.Getenv("BATON_TEST_LIFE")); err == nil {
			life = d
		}
		time.Sleep(life)
		return 1
	case "bloat":
		notifyUp("READY=1")
		// 64MiB, touched so that it is resident.
		ballast := make([]byte, 64<<20)
		for i := range ballast {
			ballast[i] = byte(i)
		}
		code := waitTerm()
		_ = ballast[len(ballast)-1]
		return code
	case "ask-recycle":
		notifyUp("READY=1")
		time.Sleep(200 * time.Millisecond)
		notifyUp("X_BATON_RECYCLE=1")
		return waitTerm()
	case "recycle-then-break":
		// The first worker asks to be recycled and breaks the command for
		// everyone after it.
		marker := os.Getenv("BATON_TEST_OUT") + "/broken"
		if _, err := os.Stat(marker); err == nil {
			return 1
		}
		notifyUp("READY=1")
		_ = os.WriteFile(marker, nil, 0o600)
		notifyUp("X_BATON_RECYCLE=1")
		return waitTerm()
	case "ready-then-exit0":
		// Ready, then a clean exit at once: a loop that must be backed off.
		// With BATON_TEST_OUT, the first worker of all lives a while, so
		// that the pool counts as having been ready.
		notifyUp("READY=1")
		life := 20 * time.Millisecond
		if dir := os.Getenv("BATON_TEST_OUT"); dir != "" {
			if _, err := os.Stat(dir + "/first"); err != nil {
				_ = os.WriteFile(dir+"/first", nil, 0o600)
				life = 1500 * time.Millisecond
			}
		}
		time.Sleep(life)
		return 0
	case "stopping-forever":
		// Announces STOPPING=1 and then never leaves, whatever it is told.
		signal.Ignore(syscall.SIGTERM)
		notifyUp("READY=1")
		time.Sleep(100 * time.Millisecond)
		notifyUp("STOPPING=1")
		select {}
	case "broken-deploy":
		// As gunicorn does: READY=1 before the application is imported,
		// then the import fails.
		notifyUp("READY=1")
		time.Sleep(200 * time.Millisecond)
		fmt.Fprintln(os.Stderr, "Traceback (most recent call last):")
		fmt.Fprintln(os.Stderr, "ModuleNotFoundError: No module named 'app'")
		return 3
	case "send-ready":
		// As systemd-notify does by default: wait until the manager has
		// processed the message (BARRIER=1), so the sender is still alive
		// to be attributed.
		notifyUp("READY=1\nSTATUS=from a child")
		s, _ := sdnotify.SenderFromEnv()
		if err := s.SendBarrier(); err != nil {
			fmt.Fprintln(os.Stderr, "test worker:", err)
			return 3
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown BATON_TEST_MODE", mode)
	return 2
}

// report writes what the worker was given to $BATON_TEST_OUT/SLOT.json.
func report() {
	fds := map[string]string{}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if t, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			fds[e.Name()] = t
		}
	}
	var st3, st4 syscall.Stat_t
	out := map[string]any{
		"pid":  os.Getpid(),
		"env":  os.Environ(),
		"fds":  fds,
		"fd3":  syscall.Fstat(3, &st3) == nil && st3.Mode&syscall.S_IFMT == syscall.S_IFSOCK,
		"fd4":  syscall.Fstat(4, &st4) == nil && st4.Mode&syscall.S_IFMT == syscall.S_IFSOCK,
		"slot": os.Getenv("BATON_WORKER"),
	}
	b, _ := json.Marshal(out)
	dir := os.Getenv("BATON_TEST_OUT")
	tmp := filepath.Join(dir, ".tmp-"+os.Getenv("BATON_WORKER"))
	_ = os.WriteFile(tmp, b, 0o600)
	_ = os.Rename(tmp, filepath.Join(dir, os.Getenv("BATON_WORKER")+".json"))
}

func envMap(env []any) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv.(string), "=")
		m[k] = v
	}
	return m
}
