package unitcheck

import (
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/sdbus"
)

func TestStopBudget(t *testing.T) {
	c := &config.Config{Command: []string{"app"}, GracefulTimeout: 30 * time.Second, TimeoutGrace: 5 * time.Second}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	short := StopBudget(c, &sdbus.Service{Unit: "app.service", TimeoutStop: 20 * time.Second})
	if len(short) != 1 || !strings.Contains(short[0].String(), "TimeoutStopSec=20s of app.service is shorter than graceful-timeout 30s plus timeout-grace 5s") || short[0].Fix != "TimeoutStopSec=40s" {
		t.Errorf("short budget: %v", short)
	}
	for _, ok := range []time.Duration{40 * time.Second, 90 * time.Second, sdbus.Infinity} {
		if f := StopBudget(c, &sdbus.Service{Unit: "app.service", TimeoutStop: ok}); len(f) != 0 {
			t.Errorf("TimeoutStop %s: %v", ok, f)
		}
	}
	c.GracefulTimeout = config.Infinity
	if f := StopBudget(c, &sdbus.Service{Unit: "app.service", TimeoutStop: time.Minute}); len(f) != 1 || f[0].Fix != "TimeoutStopSec=infinity" {
		t.Errorf("infinite drain: %v", f)
	}
}
