package workers

import (
	"bufio"
	"errors"
	"io"
	"os"
	"sync"
)

// Line is one line a worker wrote, for Options.OnOutput.
type Line struct {
	Slot, PID, Generation int
	Stream                string // "stdout" or "stderr"
	Text                  string
}

// maxLine splits longer lines, so that a worker writing without newlines
// cannot grow baton's memory.
const maxLine = 16 << 10

// outputPipes makes the pipes a worker writes its stdout and stderr to.
func outputPipes() (rOut, wOut, rErr, wErr *os.File, err error) {
	rOut, wOut, err = os.Pipe()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	rErr, wErr, err = os.Pipe()
	if err != nil {
		return nil, nil, nil, nil, errors.Join(err, rOut.Close(), wOut.Close())
	}
	return rOut, wOut, rErr, wErr, nil
}

// pumpOutput starts the pumps of a worker's two streams and closes done
// when both reached EOF.
func (s *Supervisor) pumpOutput(w *worker, done chan<- struct{}) {
	var left sync.WaitGroup
	left.Add(2)
	go func() { defer left.Done(); s.pump(w.outR, w, "stdout") }()
	go func() { defer left.Done(); s.pump(w.errR, w, "stderr") }()
	go func() { left.Wait(); close(done) }()
}

// pump reads a worker's stream until every writer closed it (the worker
// and whatever it forked), handing over each line and keeping the last
// for failure reports.
func (s *Supervisor) pump(r *os.File, w *worker, stream string) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			text := string(line)
			if text[len(text)-1] == '\n' {
				text = text[:len(text)-1]
			}
			s.onOutput(Line{Slot: w.slot, PID: w.pid, Generation: w.gen, Stream: stream, Text: text})
			if text != "" {
				w.lastLine.Store(&text)
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF), errors.Is(err, os.ErrClosed):
			return
		default:
			s.log.WithError(err).Warnf("read worker %d %s", w.slot, stream)
			return
		}
	}
}

// readAllLimit reads r to EOF, keeping at most limit bytes.
func readAllLimit(r io.Reader, limit int64) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit))
	if err != nil {
		return "", err
	}
	// Whatever is beyond the limit is read and dropped, so the writer
	// never blocks on a full pipe.
	_, err = io.Copy(io.Discard, r)
	return string(b), err
}
