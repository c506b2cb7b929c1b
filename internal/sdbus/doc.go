// Package sdbus reads a service's unit properties from the systemd manager
// that runs it, over D-Bus: go-systemd's dbus package on godbus, connected
// privately (no dbus-daemon needed) to the user manager's
// $XDG_RUNTIME_DIR/systemd/private or the system manager's
// /run/systemd/private, else through the system bus.
//
// See org.freedesktop.systemd1(5) for the properties.
package sdbus
