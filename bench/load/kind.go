package load

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
)

// Kind is what became of a request.
type Kind uint8

const (
	// OK is a complete 2xx answer.
	OK Kind = iota
	// Refused is a connection refused (ECONNREFUSED): nothing listened.
	Refused
	// Reset is a connection reset by the server (ECONNRESET, or EPIPE on
	// write).
	Reset
	// EOF is the server closing the connection before or while answering.
	EOF
	// Timeout is no complete answer within the request timeout (or no
	// connection within the dial timeout).
	Timeout
	// Non2xx is a complete answer whose status is not 2xx.
	Non2xx
	// Other is any other failure, such as an answer that is not HTTP.
	Other
)

// Kinds are the failure kinds, in report order.
var Kinds = []Kind{Refused, Reset, EOF, Timeout, Non2xx, Other}

var kindNames = [...]string{OK: "ok", Refused: "refused", Reset: "reset", EOF: "eof", Timeout: "timeout", Non2xx: "non-2xx", Other: "other"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Error is why a request failed: its kind and the step that failed.
type Error struct {
	Kind Kind
	// Op is the step: "dial", "write", "read" (the status line and
	// headers), "body" or "status".
	Op  string
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s: %v", e.Kind, e.Op, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// errMalformed marks an answer that does not parse as HTTP/1.x.
var errMalformed = errors.New("malformed response")

// StatusError is a complete answer with a status other than 2xx.
type StatusError int

func (e StatusError) Error() string { return fmt.Sprintf("status %d", int(e)) }

// newError classifies err from step op.
func newError(op string, err error) *Error {
	return &Error{Kind: classify(err), Op: op, Err: err}
}

func classify(err error) Kind {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return Reset
	case errors.As(err, &ne) && ne.Timeout():
		return Timeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return EOF
	}
	return Other
}
