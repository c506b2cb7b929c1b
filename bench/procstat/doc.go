// Package procstat samples what the benchmarks measure of a process from
// /proc (proc(5)): CPU time (utime and stime of every thread, from
// /proc/PID/stat), resident and proportional memory (/proc/PID/status,
// /proc/PID/smaps_rollup), threads and open file descriptors. Two samples
// of the same process give its share of one core between them.
//
// https://man7.org/linux/man-pages/man5/proc.5.html
package procstat
