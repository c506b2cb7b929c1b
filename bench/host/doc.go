// Package host prepares and describes the machine a benchmark runs on.
//
// The benchmarks run services under a private systemd user manager on a
// machine where systemd is not PID 1, so the kernel settings systemd
// applies when it boots a machine (its sysctl.d/50-default.conf) are
// missing. One matters to baton: net.unix.max_dgram_qlen, the number of
// datagrams a unix socket queues before senders wait, which is 10 in the
// kernel and 512 under systemd; every sd_notify message to baton (READY=1,
// WATCHDOG=1, request reports) goes through such a queue. Prepare raises it
// to systemd's value, so that a benchmark measures baton as it runs on a
// systemd machine, and Describe says what the machine was like (load
// average, the setting) for the record.
//
// See sysctl.d(5), systemd-sysctl.service(8) and unix(7).
package host
