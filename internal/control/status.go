package control

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/batonhq/baton/internal/printable"
)

// Status is `baton status --json`: a stable schema for tools. Fields are
// only ever added. Durations are seconds (float), times RFC 3339.
type Status struct {
	Version    string         `json:"version"` // of the running baton
	PID        int            `json:"pid"`
	Generation int            `json:"generation"`
	Status     string         `json:"status"` // the STATUS= line
	Workers    int            `json:"workers_wanted"`
	Ready      int            `json:"workers_ready"`
	Reloading  bool           `json:"reloading"`
	Recycled   int            `json:"workers_recycled"`
	Pool       []WorkerStatus `json:"pool"`
	Sockets    []SocketStatus `json:"sockets"`
	Reloads    []ReloadStatus `json:"reloads"` // the last ten, oldest first
	Dropped    map[string]int `json:"notifications_dropped"`
}

// WorkerStatus is one worker.
type WorkerStatus struct {
	Slot       int     `json:"slot"`
	PID        int     `json:"pid"`
	Generation int     `json:"generation"`
	State      string  `json:"state"` // starting, ready, stopping
	Retiring   bool    `json:"retiring"`
	Age        float64 `json:"age_seconds"`
	// Heartbeat is the time since the last WATCHDOG=1 (or readiness); null
	// before readiness.
	Heartbeat *float64 `json:"heartbeat_age_seconds"`
	// RSS is resident memory in bytes; null if it could not be read.
	RSS *int64 `json:"resident_memory_bytes"`
	// Request is the age of the oldest reported request in flight; null
	// when none.
	Request *float64 `json:"oldest_request_seconds"`
	Status  string   `json:"status"` // its last STATUS=
}

// SocketStatus is one socket.
type SocketStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Origin  string `json:"origin"` // inherited or bound
}

// ReloadStatus is one finished reload.
type ReloadStatus struct {
	Generation int       `json:"generation"`
	Started    time.Time `json:"started"`
	Duration   float64   `json:"duration_seconds"`
	OK         bool      `json:"ok"`
	Error      string    `json:"error,omitempty"`
}

func secs(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func optSecs(p *float64) string {
	if p == nil {
		return "-"
	}
	return secs(time.Duration(*p * float64(time.Second)))
}

// WriteTable renders s for people. Text that workers wrote (STATUS=, and
// reload errors that quote it) is escaped: no control character reaches
// the operator's terminal, and none can break the table's columns.
func (s *Status) WriteTable(w io.Writer) error {
	esc := printable.Escape
	fmt.Fprintf(w, "%s (pid %d, %s)\n\n", esc(s.Status), s.PID, esc(s.Version))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tPID\tGEN\tSTATE\tAGE\tHEARTBEAT\tMEMORY\tREQUEST\tSTATUS")
	for _, p := range s.Pool {
		state := esc(p.State)
		if p.Retiring {
			state += " (retiring)"
		}
		mem := "-"
		if p.RSS != nil {
			mem = fmt.Sprintf("%.1fMiB", float64(*p.RSS)/(1<<20))
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Slot, p.PID, p.Generation, state,
			secs(time.Duration(p.Age*float64(time.Second))), optSecs(p.Heartbeat), mem, optSecs(p.Request), esc(p.Status))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOCKET\tADDRESS\tORIGIN")
	for _, x := range s.Sockets {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", esc(x.Name), esc(x.Address), esc(x.Origin))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Reloads) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "RELOAD\tSTARTED\tTOOK\tRESULT")
		for _, r := range s.Reloads {
			res := "ok"
			if !r.OK {
				res = "failed: " + esc(strings.TrimSpace(r.Error))
			}
			fmt.Fprintf(tw, "gen %d\t%s\t%s\t%s\n", r.Generation, r.Started.Format(time.RFC3339), secs(time.Duration(r.Duration*float64(time.Second))), res)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
