// Package systemdtest boots a private systemd user manager for end-to-end
// tests, as described in DESIGN.md: in a private mount namespace
// (unshare -m) with a tmpfs on /run/systemd, its own XDG_RUNTIME_DIR and its
// own cgroup subtree (so several managers never share app.slice), driven by
// the real systemctl --user. There is no journald: units log with
// StandardOutput=append:FILE.
//
// It needs root (for unshare and the cgroup subtree), which the development
// machines and CI have. See systemd(1) and systemctl(1).
package systemdtest
