package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves HTTP/1 on listeners the way a worker under baton (or
// systemd) should: readiness once accepting, a watchdog that stops when
// the server stops making progress, request deadlines and reports, and a
// drain that fails no request. Make one with New; run it with Serve (or
// Run, which also handles SIGTERM and SIGINT).
type Server struct {
	srv      *http.Server
	handler  http.Handler
	log      *slog.Logger
	notify   *Notifier
	rep      *reporter
	timeout  time.Duration
	quiet    time.Duration
	drainMax time.Duration
	healthy  func() bool
	userHook func(net.Conn, http.ConnState)
	wd       watchdog
	// epoch anchors the int64 nanosecond times below (monotonic).
	epoch time.Time

	draining   atomic.Bool
	drainStart atomic.Int64
	inflight   atomic.Int64 // requests whose handler runs
	overdue    atomic.Int64 // of those, running past their deadline
	lastDone   atomic.Int64 // when a request last completed
	timedOut   atomic.Int64 // requests answered 504, ever
	waiting    atomic.Int32 // listeners not yet accepting, before READY=1

	mu        sync.Mutex
	conns     map[*conn]struct{}
	listeners []*listener
	started   bool
	force     chan struct{} // closed by Close
	forceOnce sync.Once
}

// New checks cfg and makes a Server. It takes the scoreboard baton passed
// (BATON_SCOREBOARD_FD), if any: the first Server made gets it, later ones
// report as if none was passed. It reads the watchdog interval
// (WATCHDOG_USEC, for this pid as WATCHDOG_PID says).
func New(cfg Config) (*Server, error) {
	srv := cfg.Server
	if srv == nil {
		srv = &http.Server{ReadHeaderTimeout: 10 * time.Second}
	}
	h := cfg.Handler
	if h == nil {
		h = srv.Handler
	}
	if h == nil {
		return nil, errors.New("serve: Config.Handler is nil")
	}
	if cfg.RequestTimeout < 0 || cfg.QuietWindow < 0 || cfg.DrainTimeout < 0 {
		return nil, fmt.Errorf("serve: negative duration in Config (RequestTimeout %s, QuietWindow %s, DrainTimeout %s)", cfg.RequestTimeout, cfg.QuietWindow, cfg.DrainTimeout)
	}
	n := cfg.Notifier
	if n == nil {
		var err error
		if n, err = DefaultNotifier(); err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
	}
	interval, err := watchdogInterval()
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	rep, err := newReporter(cfg.Reports, n)
	if err != nil {
		return nil, err
	}
	s := &Server{
		srv:      srv,
		handler:  h,
		log:      cfg.Logger,
		notify:   n,
		rep:      rep,
		timeout:  cfg.RequestTimeout,
		quiet:    cfg.QuietWindow,
		drainMax: cfg.DrainTimeout,
		healthy:  cfg.Healthy,
		userHook: srv.ConnState,
		epoch:    time.Now(),
		conns:    map[*conn]struct{}{},
		force:    make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.quiet == 0 {
		s.quiet = DefaultQuietWindow
	}
	s.wd.interval = interval
	srv.Handler = s
	srv.ConnState = s.connState
	// HTTP/1 only: the drain speaks HTTP/1's Connection: close, and TLS
	// with HTTP/2 belongs in front of a pre-fork pool anyway.
	var p http.Protocols
	p.SetHTTP1(true)
	srv.Protocols = &p
	return s, nil
}

// now is the time since the server was made, in nanoseconds.
func (s *Server) now() int64 { return int64(time.Since(s.epoch)) }

// Serve accepts on the listeners until ctx is done (or a listener fails),
// then drains, and returns once every connection is closed. READY=1 is
// sent once every listener is being accepted on. Serve may be called once.
func (s *Server) Serve(ctx context.Context, listeners ...net.Listener) error {
	if len(listeners) == 0 {
		return errors.New("serve: no listeners")
	}
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("serve: Serve called twice")
	}
	s.started = true
	for _, l := range listeners {
		s.listeners = append(s.listeners, s.wrap(l))
	}
	s.mu.Unlock()
	s.waiting.Store(int32(len(listeners)))

	errs := make(chan error, len(s.listeners))
	for _, l := range s.listeners {
		go func() { errs <- s.srv.Serve(l) }()
	}
	stopTicker := s.startWatchdogTicker()
	var failed error
	pending := len(s.listeners)
	select {
	case <-ctx.Done():
	case <-s.force:
	case err := <-errs:
		pending--
		failed = fmt.Errorf("serve: %w", err)
		s.log.Error("serve: a listener failed; draining", "err", err)
	}
	err := s.drain(errs, pending)
	stopTicker()
	return errors.Join(failed, err)
}

// Close stops at once: listeners and connections are closed, whatever they
// were doing, and a drain under way ends. Serve then returns.
func (s *Server) Close() error {
	s.forceOnce.Do(func() { close(s.force) })
	return s.srv.Close()
}

// ServeHTTP is the handler net/http calls: it marks responses during a
// drain, reports the request, and applies its deadline.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A protocol upgrade (WebSocket) is a connection, not a request: it
	// has no deadline, is not reported, and its 101 must not say close.
	if r.Header.Get("Upgrade") != "" {
		s.handler.ServeHTTP(w, r)
		return
	}
	if s.draining.Load() {
		// net/http closes the connection after this response, and the
		// client knows not to send on it again.
		w.Header().Set("Connection", "close")
	}
	tok := s.begin(r)
	if s.timeout <= 0 {
		defer s.end(tok)
		s.handler.ServeHTTP(w, r)
		return
	}
	s.serveWithDeadline(w, r, tok)
}

func (s *Server) begin(r *http.Request) token {
	s.inflight.Add(1)
	tok, err := s.rep.begin(r)
	if err != nil {
		s.reportFailed(err)
	}
	return tok
}

// end runs when the handler returned, whether or not the client was
// answered at the deadline.
func (s *Server) end(tok token) {
	if err := s.rep.end(tok); err != nil {
		s.reportFailed(err)
	}
	s.lastDone.Store(s.now())
	s.inflight.Add(-1)
}

// reportFailed logs the first failed report and counts the others: a lost
// report must not fail the request.
func (s *Server) reportFailed(err error) {
	if s.rep.failed.Add(1) == 1 {
		s.log.Warn("serve: reporting a request to baton failed (further failures are counted, not logged)", "err", err)
	}
}
