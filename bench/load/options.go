package load

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// Options are a run's settings. Zero values are the defaults noted.
type Options struct {
	// URL is what every request GETs: http://host[:port]/path?query.
	URL string
	// Host is the Host header; empty is the URL's host.
	Host string
	// Clients is how many connections run at once (default 1): in a
	// closed loop, each client sends its next request when the previous
	// one finished; at a fixed rate, the clients share the schedule and a
	// request waits for a free one.
	Clients int
	// Rate, when positive, starts requests at Rate per second (an open
	// loop) instead of a closed loop. A request's latency counts from its
	// scheduled start, so time spent waiting for a free client counts.
	Rate float64
	// Duration ends the run after that long; zero runs until the context
	// ends, Stop is called or Requests have started.
	Duration time.Duration
	// Requests, when positive, ends the run once that many requests have
	// started.
	Requests int
	// KeepAlive reuses a connection until the server closes it or a
	// request on it fails; off, every request opens a fresh connection and
	// sends "Connection: close".
	KeepAlive bool
	// Timeout bounds one request, from its dial or write to the last byte
	// of the answer (default 10s).
	Timeout time.Duration
	// DialTimeout bounds the connect (default 5s, and never more than
	// Timeout).
	DialTimeout time.Duration
	// BodyLine keeps the first line of each answer's body in its Record
	// (the example server answers with its worker's pid).
	BodyLine bool
	// Progress, when set, is called after each request with its record,
	// from the client that sent it: it must be safe for concurrent use and
	// quick.
	Progress func(Record)
}

// target is what Options resolve to.
type target struct {
	addr, path, host string
}

func (o *Options) resolve() (target, error) {
	if o.Clients == 0 {
		o.Clients = 1
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.DialTimeout > o.Timeout {
		o.DialTimeout = o.Timeout
	}
	switch {
	case o.Clients < 0:
		return target{}, fmt.Errorf("load options: clients %d: must be positive", o.Clients)
	case o.Rate < 0:
		return target{}, fmt.Errorf("load options: rate %g: must not be negative", o.Rate)
	case o.Duration < 0, o.Requests < 0, o.Timeout < 0, o.DialTimeout < 0:
		return target{}, errors.New("load options: duration, requests and timeouts must not be negative")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return target{}, fmt.Errorf("load options: url: %w", err)
	}
	if u.Scheme != "http" {
		return target{}, fmt.Errorf("load options: url %q: only http:// is supported", o.URL)
	}
	if u.Host == "" {
		return target{}, fmt.Errorf("load options: url %q has no host", o.URL)
	}
	t := target{addr: u.Host, path: u.RequestURI(), host: o.Host}
	if u.Port() == "" {
		t.addr = net.JoinHostPort(u.Hostname(), "80")
	}
	if t.host == "" {
		t.host = u.Host
	}
	return t, nil
}
