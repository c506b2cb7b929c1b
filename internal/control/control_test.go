package control

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonhq/baton/internal/testutil"
)

type fakeHandler struct{ reloadErr error }

func (f fakeHandler) Reload(_ context.Context, wait bool) (string, error) {
	if f.reloadErr != nil {
		return "", f.reloadErr
	}
	if wait {
		return "reloaded", nil
	}
	return "reload started", nil
}

func (f fakeHandler) Status(context.Context) (*Status, error) {
	return &Status{Generation: 3, Status: "2/2 workers ready, generation 3", Pool: []WorkerStatus{{Slot: 1, PID: 10, State: "ready"}}}, nil
}

func (f fakeHandler) Upgrade(ctx context.Context) (string, error) {
	if _, ok := ConnFD(ctx); !ok {
		return "", errors.New("no connection fd")
	}
	return "upgraded", nil
}

func (f fakeHandler) Scale(_ context.Context, delta int) (string, error) {
	return "scaled by " + string(rune('0'+delta)), nil
}

func serve(t *testing.T, h Handler) string {
	t.Helper()
	testutil.CheckFDLeaks(t)
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := Listen(path, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("control socket left behind: %v", err)
		}
	})
	return path
}

func TestReloadRoundTrip(t *testing.T) {
	path := serve(t, fakeHandler{})
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	msg, err := Call(context.Background(), path, Request{Command: "reload", Wait: true})
	if err != nil || msg != "reloaded" {
		t.Errorf("%q %v", msg, err)
	}
	st, err := GetStatus(context.Background(), path)
	if err != nil || st.Generation != 3 || st.Pool[0].PID != 10 {
		t.Errorf("status %+v %v", st, err)
	}
	if msg, err := Call(context.Background(), path, Request{Command: "upgrade"}); err != nil || msg != "upgraded" {
		t.Errorf("upgrade %q %v", msg, err)
	}
	msg, err = Call(context.Background(), path, Request{Command: "scale", Delta: 2})
	if err != nil || msg != "scaled by 2" {
		t.Errorf("%q %v", msg, err)
	}
}

func TestErrorsComeBack(t *testing.T) {
	path := serve(t, fakeHandler{reloadErr: errors.New("app.toml:3:1: workers: bad")})
	if _, err := Call(context.Background(), path, Request{Command: "reload"}); err == nil || err.Error() != "app.toml:3:1: workers: bad" {
		t.Errorf("got %v", err)
	}
	if _, err := Call(context.Background(), path, Request{Command: "explode"}); err == nil || !strings.Contains(err.Error(), `unknown command "explode"`) {
		t.Errorf("got %v", err)
	}
	if _, err := Call(context.Background(), filepath.Join(t.TempDir(), "none.sock"), Request{Command: "reload"}); err == nil || !strings.Contains(err.Error(), "connect to baton at") {
		t.Errorf("got %v", err)
	}
}

// A server that closes without answering, as baton does when it executes
// itself in place mid-request.
func TestUnansweredRequests(t *testing.T) {
	testutil.CheckFDLeaks(t)
	path := filepath.Join(t.TempDir(), "mute.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan int, 4)
	go func() {
		for i := 0; ; i++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if i == 0 {
				c.Close() // the first status request dies with the old image
				accepted <- i
				continue
			}
			var req Request
			_ = json.NewDecoder(c).Decode(&req)
			_ = json.NewEncoder(c).Encode(Response{OK: true, Status: &Status{Generation: 7}})
			c.Close()
			accepted <- i
		}
	}()
	st, err := GetStatus(context.Background(), path)
	if err != nil || st.Generation != 7 {
		t.Fatalf("status after one dropped request: %+v %v", st, err)
	}
	<-accepted
	<-accepted

	// reload is not retried (it may have been carried out): the caller is
	// told what happened.
	mute := filepath.Join(t.TempDir(), "mute2.sock")
	l2, err := net.Listen("unix", mute)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	go func() {
		for {
			c, err := l2.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, err = Call(context.Background(), mute, Request{Command: "reload", Wait: true})
	if !errors.Is(err, ErrNoAnswer) || !strings.Contains(err.Error(), "without answering") {
		t.Errorf("unanswered reload: %v", err)
	}
}
