package serve

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"
)

// Config says how to serve. Each field's zero value is documented and
// usable: Config{Handler: h} serves h with baton's defaults.
type Config struct {
	// Handler answers requests. Required unless Server.Handler is set.
	Handler http.Handler

	// Server, when set, is the http.Server to run, for its timeouts,
	// ErrorLog, MaxHeaderBytes, BaseContext and the like. serve sets its
	// Handler, its ConnState (calling any hook already set) and its
	// Protocols (HTTP/1 only: see the package documentation); do not call
	// its Serve or Shutdown yourself. nil: a server whose only setting is
	// ReadHeaderTimeout, 10s.
	Server *http.Server

	// RequestTimeout is each request's deadline. Past it the handler's
	// context is cancelled and, if the handler wrote nothing yet, the
	// client is answered 504 Gateway Timeout; the request stays reported
	// as running until the handler returns. 0: no deadline.
	RequestTimeout time.Duration

	// QuietWindow is how long a drain lets an idle keep-alive connection
	// be, counted from the later of the drain's start and the connection's
	// last response, before closing it: a client that sends on it within
	// the window is answered (with Connection: close) instead of finding
	// it closed. 0: 1s.
	QuietWindow time.Duration

	// DrainTimeout bounds a drain: connections still open after it are
	// closed. 0: no bound of serve's own (under baton, graceful-timeout
	// bounds it from outside).
	DrainTimeout time.Duration

	// Reports says how request begins and ends are reported to baton, for
	// its request clock. BATON_REQUEST_REPORTS, when set, overrides it.
	// Zero: ReportsAuto.
	Reports Reports

	// Healthy, when set, is asked before each watchdog ping: false
	// withholds the ping, so a program that knows it is wedged (a pool
	// exhausted, a lock held forever) is restarted. It runs on the accept
	// loop and must return at once; it must not block.
	Healthy func() bool

	// Notifier is where READY=1, STATUS=, STOPPING=1, WATCHDOG=1 and
	// request datagrams go. nil: DefaultNotifier, for $NOTIFY_SOCKET.
	Notifier *Notifier

	// Logger gets serve's few log lines (requests past their deadline,
	// withheld watchdog pings, the drain). nil: slog.Default().
	Logger *slog.Logger
}

// DefaultQuietWindow is QuietWindow's default.
const DefaultQuietWindow = time.Second

// Reports is how requests are reported to baton.
type Reports int

const (
	// ReportsAuto reports through the scoreboard when baton passed one
	// (BATON_SCOREBOARD_FD; baton does when the worker's request-timeout
	// is set), else not at all.
	ReportsAuto Reports = iota
	// ReportsScoreboardOrNotify reports through the scoreboard when baton
	// passed one, else with X_BATON_REQUEST_BEGIN/END datagrams on
	// NOTIFY_SOCKET (two sends per request).
	ReportsScoreboardOrNotify
	// ReportsScoreboard reports through the scoreboard, which baton must
	// have passed: starting without one is an error.
	ReportsScoreboard
	// ReportsNotify reports with datagrams, even when a scoreboard was
	// passed.
	ReportsNotify
	// ReportsOff reports nothing.
	ReportsOff
)

// EnvReports names the variable that overrides Config.Reports: auto,
// scoreboard-or-notify, scoreboard, notify or off.
const EnvReports = "BATON_REQUEST_REPORTS"

var reportsNames = map[Reports]string{
	ReportsAuto:               "auto",
	ReportsScoreboardOrNotify: "scoreboard-or-notify",
	ReportsScoreboard:         "scoreboard",
	ReportsNotify:             "notify",
	ReportsOff:                "off",
}

func (r Reports) String() string {
	if s, ok := reportsNames[r]; ok {
		return s
	}
	return fmt.Sprintf("Reports(%d)", int(r))
}

// ParseReports parses a BATON_REQUEST_REPORTS value.
func ParseReports(s string) (Reports, error) {
	for r, name := range reportsNames {
		if s == name {
			return r, nil
		}
	}
	return 0, fmt.Errorf("%s=%q: want auto, scoreboard-or-notify, scoreboard, notify or off", EnvReports, s)
}

// reportsMode is the mode in force: the variable's, else the config's.
func reportsMode(cfg Reports) (Reports, error) {
	v, ok := os.LookupEnv(EnvReports)
	if !ok || strings.TrimSpace(v) == "" {
		if _, known := reportsNames[cfg]; !known {
			return 0, fmt.Errorf("serve: Config.Reports: unknown value %d", int(cfg))
		}
		return cfg, nil
	}
	return ParseReports(strings.TrimSpace(v))
}
