// Package packaging holds baton's .deb and .rpm packaging: nfpm.yaml at the
// repository root, the maintainer scripts, man page, copyright, changelog
// and build script here. Its tests build both packages, hold them to
// lintian and rpmlint, and install, upgrade and purge the .deb, and reload
// hand-written and Type=notify-reload units, on Debian 12 (systemd 252) and
// 13 (systemd 257) booted in a container (systemd-nspawn).
package packaging
