// Package unitcheck compares baton's settings with the systemd unit that
// runs it and names each inconsistency with the line to change. The unit's
// properties come from internal/sdbus; see systemd.service(5) and
// systemd.kill(5) for what they mean.
package unitcheck
