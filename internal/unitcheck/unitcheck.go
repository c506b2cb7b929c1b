package unitcheck

import (
	"fmt"
	"time"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/sdbus"
)

// Finding is one inconsistency.
type Finding struct {
	Severity Severity
	Problem  string // what is wrong
	Fix      string // the unit line to change, e.g. "TimeoutStopSec=40s"
}

func (f Finding) String() string { return f.Problem + "; set " + f.Fix + " in [Service]" }

// stopMargin leaves room for baton's own SIGKILLs and exit.
const stopMargin = 5 * time.Second

// StopBudget checks that systemd's stop timeout leaves room for the drain:
// drain-delay, graceful-timeout, then timeout-grace for a worker on the escalation
// ladder, plus a margin. Otherwise systemd SIGKILLs baton mid-drain should
// baton be unable to extend the budget (EXTEND_TIMEOUT_USEC=) in time.
func StopBudget(c *config.Config, s *sdbus.Service) []Finding {
	if c.GracefulTimeout == config.Infinity {
		if s.TimeoutStop != sdbus.Infinity {
			return []Finding{{
				Problem: fmt.Sprintf("graceful-timeout is infinity but TimeoutStopSec=%s of %s is not", s.TimeoutStop, s.Unit),
				Fix:     "TimeoutStopSec=infinity",
			}}
		}
		return nil
	}
	need := c.DrainDelay + c.GracefulTimeout + c.TimeoutGrace + stopMargin
	if s.TimeoutStop == sdbus.Infinity || s.TimeoutStop >= need {
		return nil
	}
	delay := ""
	if c.DrainDelay > 0 {
		delay = fmt.Sprintf("drain-delay %s plus ", c.DrainDelay)
	}
	return []Finding{{
		Problem: fmt.Sprintf("TimeoutStopSec=%s of %s is shorter than %sgraceful-timeout %s plus timeout-grace %s plus %s for baton itself: systemd may SIGKILL the pool mid-drain",
			s.TimeoutStop, s.Unit, delay, config.FormatDuration(c.GracefulTimeout), c.TimeoutGrace, stopMargin),
		Fix: fmt.Sprintf("TimeoutStopSec=%s", need.Round(time.Second)),
	}}
}
