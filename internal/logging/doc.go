// Package logging builds baton's logger (logrus): text for terminals and
// files, JSON for log shippers, and the journal's native protocol when
// baton's stderr is connected to journald (JOURNAL_STREAM, see
// systemd.exec(5)), so that every line carries its PRIORITY= (journalctl -p
// works) and its structured fields (BATON_WORKER=, BATON_WORKER_PID=,
// BATON_GENERATION=, BATON_CLOCK=, ...). See sd-daemon(3) and
// systemd-journald.service(8).
package logging
