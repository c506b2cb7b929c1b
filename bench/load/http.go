package load

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The largest status or header line read, and the longest first body line
// kept.
const (
	maxLine     = 8 << 10
	maxBodyLine = 256
)

// request is the bytes of one GET, the same for every request of a run.
func request(path, host string, keepAlive bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: batonload\r\nAccept: */*\r\n", path, host)
	if !keepAlive {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// response is what readResponse learnt of an answer.
type response struct {
	status int
	// keep is whether the connection may carry another request: HTTP/1.1
	// without "Connection: close", or HTTP/1.0 with "keep-alive", and a
	// body not delimited by the server closing.
	keep bool
	line []byte
}

// readResponse reads one whole answer to a GET (RFC 9112 sections 4 to 7):
// interim 1xx answers are skipped, the body is read by Content-Length, as
// chunks, or up to the server's close. With wantLine it keeps the body's
// first line.
func readResponse(br *bufio.Reader, wantLine bool) (response, *Error) {
	for {
		r, op, err := readOne(br, wantLine)
		if err != nil {
			return r, newError(op, err)
		}
		if r.status >= 200 || r.status < 100 {
			return r, nil
		}
	}
}

func readOne(br *bufio.Reader, wantLine bool) (response, string, error) {
	var r response
	status, err := readLine(br)
	if err != nil {
		return r, "read", err
	}
	proto, code, ok := parseStatus(status)
	if !ok {
		return r, "read", fmt.Errorf("%w: status line %q", errMalformed, truncate(status))
	}
	r.status = code
	r.keep = proto == "HTTP/1.1"
	length, chunked, closeDelimited := int64(-1), false, false
	for {
		line, err := readLine(br)
		if err != nil {
			return r, "read", err
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return r, "read", fmt.Errorf("%w: header line %q", errMalformed, truncate(line))
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || (length >= 0 && n != length) {
				return r, "read", fmt.Errorf("%w: Content-Length %q", errMalformed, truncate(value))
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			// Only a final "chunked" frames the body; any other coding
			// runs to the close (RFC 9112 section 6.3).
			codings := bytes.Split(value, []byte(","))
			chunked = bytes.EqualFold(bytes.TrimSpace(codings[len(codings)-1]), []byte("chunked"))
			closeDelimited = !chunked
		case bytes.EqualFold(name, []byte("Connection")):
			for _, tok := range bytes.Split(value, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				if bytes.EqualFold(tok, []byte("close")) {
					r.keep = false
				} else if bytes.EqualFold(tok, []byte("keep-alive")) && proto == "HTTP/1.0" {
					r.keep = true
				}
			}
		}
	}
	if code == 101 {
		return r, "read", fmt.Errorf("%w: 101 Switching Protocols to a GET", errMalformed)
	}
	body := &firstLine{want: wantLine}
	switch {
	case code < 200, code == 204, code == 304:
		// No body.
	case chunked:
		err = readChunked(br, body)
	case closeDelimited, length < 0:
		r.keep = false
		err = copyBody(br, -1, body)
	default:
		err = copyBody(br, length, body)
	}
	r.line = body.line()
	if err != nil {
		return r, "body", err
	}
	return r, "", nil
}

// readLine reads a line without its CRLF (or bare LF). An end of stream
// within a line is io.ErrUnexpectedEOF, before any byte io.EOF.
func readLine(br *bufio.Reader) ([]byte, error) {
	b, err := br.ReadSlice('\n')
	switch {
	case err == io.EOF && len(b) > 0:
		return nil, io.ErrUnexpectedEOF
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("%w: a line longer than %d bytes", errMalformed, br.Size())
	case err != nil:
		return nil, err
	}
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b, nil
}

// parseStatus splits "HTTP/1.1 200 OK".
func parseStatus(line []byte) (proto string, code int, ok bool) {
	p, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || (string(p) != "HTTP/1.1" && string(p) != "HTTP/1.0") || len(rest) < 3 || (len(rest) > 3 && rest[3] != ' ') {
		return "", 0, false
	}
	code, err := strconv.Atoi(string(rest[:3]))
	if err != nil || code < 100 {
		return "", 0, false
	}
	return string(p), code, true
}

// copyBody reads n bytes of body, or up to the end of the stream when n is
// negative, without copying them except the first line.
func copyBody(br *bufio.Reader, n int64, into *firstLine) error {
	for n != 0 {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				if err == io.EOF {
					if n < 0 {
						return nil
					}
					return io.ErrUnexpectedEOF
				}
				return err
			}
		}
		k := br.Buffered()
		if n > 0 && int64(k) > n {
			k = int(n)
		}
		b, _ := br.Peek(k)
		into.take(b)
		_, _ = br.Discard(k)
		if n > 0 {
			n -= int64(k)
		}
	}
	return nil
}

// readChunked reads a chunked body and its trailer section (RFC 9112
// section 7.1).
func readChunked(br *bufio.Reader, into *firstLine) error {
	for {
		line, err := readLine(br)
		if err != nil {
			return eofIsUnexpected(err)
		}
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseUint(string(bytes.TrimSpace(size)), 16, 62)
		if err != nil {
			return fmt.Errorf("%w: chunk size %q", errMalformed, truncate(line))
		}
		if n == 0 {
			for {
				line, err := readLine(br)
				if err != nil {
					return eofIsUnexpected(err)
				}
				if len(line) == 0 {
					return nil
				}
			}
		}
		if err := copyBody(br, int64(n), into); err != nil {
			return err
		}
		line, err = readLine(br)
		if err != nil {
			return eofIsUnexpected(err)
		}
		if len(line) != 0 {
			return fmt.Errorf("%w: chunk not followed by CRLF", errMalformed)
		}
	}
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// firstLine keeps the first line of a body, up to maxBodyLine bytes.
type firstLine struct {
	want, done bool
	buf        []byte
}

func (f *firstLine) take(p []byte) {
	if !f.want || f.done {
		return
	}
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		p, f.done = p[:i], true
	}
	if room := maxBodyLine - len(f.buf); len(p) >= room {
		p, f.done = p[:room], true
	}
	f.buf = append(f.buf, p...)
}

func (f *firstLine) line() []byte {
	return bytes.TrimSuffix(f.buf, []byte("\r"))
}

func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}
