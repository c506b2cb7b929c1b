package serve

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/batonhq/baton/scoreboard"
)

// The sd_notify fields of baton's request extension (docs/protocol.md).
const (
	fieldBegin = "X_BATON_REQUEST_BEGIN="
	fieldEnd   = "X_BATON_REQUEST_END="
	// maxRequestID is the longest ID baton accepts.
	maxRequestID = 256
)

// reporter tells baton which requests run: through the scoreboard, with
// datagrams, or not at all.
type reporter struct {
	mode   Reports // ReportsScoreboard, ReportsNotify or ReportsOff, as resolved
	board  *scoreboard.Writer
	notify *Notifier
	seq    atomic.Uint64
	// failed counts reports that could not be sent; the first is logged.
	failed atomic.Int64
}

// token is one reported request.
type token struct {
	board scoreboard.Token
	id    string // the datagram ID; "" when not sent
}

// newReporter resolves the mode and takes the scoreboard baton passed, if
// any. The scoreboard's fd and variable are taken whatever the mode, so
// that they never leak to the program's children.
func newReporter(want Reports, n *Notifier) (*reporter, error) {
	board, err := scoreboard.FromEnv()
	if err != nil {
		return nil, err
	}
	mode, err := reportsMode(want)
	if err != nil {
		return nil, errors.Join(err, board.Close())
	}
	r := &reporter{notify: n, mode: ReportsOff}
	switch mode {
	case ReportsAuto:
		if board != nil {
			r.mode = ReportsScoreboard
		}
	case ReportsScoreboardOrNotify:
		switch {
		case board != nil:
			r.mode = ReportsScoreboard
		case n.Enabled():
			r.mode = ReportsNotify
		}
	case ReportsScoreboard:
		if board == nil {
			return nil, fmt.Errorf("serve: request reports %s, but baton passed no scoreboard (%s is not set: is baton's request-timeout set?)", mode, scoreboard.EnvFD)
		}
		r.mode = ReportsScoreboard
	case ReportsNotify:
		if !n.Enabled() {
			return nil, errors.Join(fmt.Errorf("serve: request reports %s, but NOTIFY_SOCKET is not set", mode), board.Close())
		}
		r.mode = ReportsNotify
	}
	if r.mode == ReportsScoreboard {
		r.board = board
	} else if err := board.Close(); err != nil {
		return nil, err
	}
	return r, nil
}

// begin reports that r started.
func (rp *reporter) begin(r *http.Request) (token, error) {
	switch rp.mode {
	case ReportsScoreboard:
		return token{board: rp.board.Begin(r.Method + " " + r.RequestURI)}, nil
	case ReportsNotify:
		id := requestID(rp.seq.Add(1), r)
		if err := rp.notify.send(append([]byte(fieldBegin), id...)); err != nil {
			return token{}, err
		}
		return token{id: id}, nil
	}
	return token{}, nil
}

// end reports that the request of t ended.
func (rp *reporter) end(t token) error {
	switch {
	case rp.mode == ReportsScoreboard:
		rp.board.End(t.board)
	case t.id != "":
		return rp.notify.send(append([]byte(fieldEnd), t.id...))
	}
	return nil
}

// requestID is "SEQ METHOD TARGET", cut to what baton accepts and made
// valid UTF-8: baton drops a datagram that is not, and a lost END would
// leave the request running on baton's clock forever.
func requestID(seq uint64, r *http.Request) string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(seq, 10))
	b.WriteByte(' ')
	b.WriteString(r.Method)
	b.WriteByte(' ')
	b.WriteString(r.RequestURI)
	id := b.String()
	if !utf8.ValidString(id) {
		id = strings.ToValidUTF8(id, "?")
	}
	if strings.ContainsAny(id, "\n\x00") {
		id = strings.NewReplacer("\n", "?", "\x00", "?").Replace(id)
	}
	if len(id) > maxRequestID {
		id = id[:maxRequestID]
		for !utf8.ValidString(id) {
			id = id[:len(id)-1]
		}
	}
	return id
}
