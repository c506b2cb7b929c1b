// Package units embeds baton's systemd unit files, so that `baton units`
// can install them where no package did. See systemd.service(5),
// systemd.socket(5) and systemd.exec(5) for the directives.
package units
