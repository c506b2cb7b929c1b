// Command baton is a systemd-native pre-fork server runtime: it runs N
// workers of any socket-activated program, hands them the listening sockets
// as systemd would, and supervises them with sd_notify heartbeats.
//
// This package only wires the others together: flags, signals, exit codes.
package main
