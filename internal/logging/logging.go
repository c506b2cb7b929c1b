package logging

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/sirupsen/logrus"
)

// Formats lists the values of --log-format.
var Formats = []string{"auto", "text", "json", "journal"}

// New returns a logger writing to stderr in format at level. "auto" picks
// the journal when stderr is journald's stream, else text.
func New(format, level string, stderr io.Writer) (*logrus.Logger, error) {
	log := logrus.New()
	log.SetOutput(stderr)
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warning or error", level)
	}
	log.SetLevel(lvl)
	if format == "auto" {
		format = "text"
		if ok, err := journal.StderrIsJournalStream(); err == nil && ok {
			format = "journal"
		}
	}
	switch format {
	case "text":
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{})
	case "journal":
		// journald adds its own timestamp; the hook sends each entry
		// natively and writes nothing to stderr unless the journal fails.
		log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
		log.AddHook(&journalHook{fallback: stderr})
		log.SetOutput(io.Discard)
	default:
		return nil, fmt.Errorf("--log-format %q: want %s", format, strings.Join(Formats, ", "))
	}
	return log, nil
}

// Priority maps a logrus level to a syslog priority.
func Priority(l logrus.Level) journal.Priority {
	switch l {
	case logrus.PanicLevel, logrus.FatalLevel:
		return journal.PriCrit
	case logrus.ErrorLevel:
		return journal.PriErr
	case logrus.WarnLevel:
		return journal.PriWarning
	case logrus.InfoLevel:
		return journal.PriInfo
	}
	return journal.PriDebug
}

// fieldNames maps baton's log fields to journal field names.
var fieldNames = map[string]string{
	"worker": "BATON_WORKER", "pid": "BATON_WORKER_PID", "generation": "BATON_GENERATION",
	"clock": "BATON_CLOCK", "stream": "BATON_STREAM",
}

// JournalField turns a logrus field name into a valid journal field name.
func JournalField(k string) string {
	if n, ok := fieldNames[k]; ok {
		return n
	}
	var b strings.Builder
	b.WriteString("BATON_")
	for _, r := range strings.ToUpper(k) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

type journalHook struct{ fallback io.Writer }

func (h *journalHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *journalHook) Fire(e *logrus.Entry) error {
	vars := map[string]string{"SYSLOG_IDENTIFIER": "baton"}
	if id, ok := e.Data["syslog_identifier"].(string); ok {
		vars["SYSLOG_IDENTIFIER"] = id
	}
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		if k != "syslog_identifier" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		vars[JournalField(k)] = fmt.Sprint(e.Data[k])
	}
	if err := journal.Send(e.Message, Priority(e.Level), vars); err != nil {
		// journald is gone: keep the line, with its priority prefix so that
		// a stream to journald would still file it right.
		line, ferr := e.Bytes()
		if ferr != nil {
			return ferr
		}
		_, werr := fmt.Fprintf(h.fallback, "<%d>%s", Priority(e.Level), line)
		return werr
	}
	return nil
}
