// Package e2e runs baton under a real systemd user manager
// (internal/systemdtest) with real .socket and .service units, real
// systemctl --user and real HTTP load on 127.0.0.1: one test per
// user-visible feature. Everything is in its _test.go files.
package e2e
