package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/sdnotify"
)

// The test binary re-executes itself in these roles: as a worker that
// misbehaves, and as a client of another user.
const roleEnv = "BATON_TEST_ROLE"

// hostileStatus is a STATUS= that would clear an operator's terminal and
// retitle it if it got there unescaped.
const hostileStatus = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\u009b0m\x7fend"

func runRole(role string) int {
	var err error
	switch role {
	case "scaler":
		err = scaler()
	case "scale-now":
		err = scaleNow()
	case "status":
		err = hostileWorker()
	case "holder":
		err = holder()
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "role %s: %v\n", role, err)
		return 1
	}
	return 0
}

func forever() {
	for {
		time.Sleep(time.Hour)
	}
}

// scaler is a worker whose first slot asks baton, over the control socket,
// to scale its own pool by +3: itself, or through an orphaned grandchild
// (BATON_TEST_ORPHAN=1), re-parented as a double fork leaves it (to baton,
// its subreaper, or to init).
func scaler() error {
	if os.Getenv("BATON_WORKER") != "1" || os.Getenv("BATON_GENERATION") != "1" {
		forever()
	}
	if os.Getenv("BATON_TEST_ORPHAN") == "1" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		cmd := exec.Command("/bin/sh", "-c", `"$0" </dev/null >/dev/null 2>&1 &`, self)
		cmd.Env = append(os.Environ(), roleEnv+"=scale-now")
		if err := cmd.Run(); err != nil {
			return err
		}
		forever()
	}
	if err := scaleNow(); err != nil {
		return err
	}
	forever()
	return nil
}

// scaleNow asks for +3 workers and writes what baton said to
// BATON_TEST_OUT, with the pid and parent that asked.
func scaleNow() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msg, err := control.Call(ctx, os.Getenv("BATON_TEST_CONTROL"), control.Request{Command: "scale", Delta: 3})
	out := "ok: " + msg
	if err != nil {
		out = "error: " + err.Error()
	}
	out += fmt.Sprintf("\npid %d parent %d\n", os.Getpid(), os.Getppid())
	path := os.Getenv("BATON_TEST_OUT")
	if err := os.WriteFile(path+".tmp", []byte(out), 0o600); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// hostileWorker reports ready with a STATUS= full of terminal escapes.
func hostileWorker() error {
	s, err := sdnotify.NewSender(os.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		return err
	}
	if err := s.Send("READY=1\nSTATUS=" + hostileStatus); err != nil {
		return err
	}
	forever()
	return nil
}

// holder becomes nobody, opens BATON_TEST_CONNS connections to
// BATON_TEST_ADDR, sends one keep-alive request on every other one and
// leaves all of them open until its stdin closes. It prints "held N".
func holder() error {
	if err := syscall.Setgroups(nil); err != nil {
		return err
	}
	if err := syscall.Setgid(65534); err != nil {
		return err
	}
	if err := syscall.Setuid(65534); err != nil {
		return err
	}
	n, err := strconv.Atoi(os.Getenv("BATON_TEST_CONNS"))
	if err != nil {
		return err
	}
	var conns []net.Conn
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", os.Getenv("BATON_TEST_ADDR"), 10*time.Second)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, c)
		if i%2 == 0 {
			if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: baton\r\n\r\n"); err != nil {
				return err
			}
		}
	}
	fmt.Printf("held %d as uid %d\n", len(conns), os.Getuid())
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	for _, c := range conns {
		c.Close()
	}
	return nil
}
