// Package units embeds baton's systemd unit files, so that `baton units`
// can install them where no package did. See systemd.service(5),
// systemd.socket(5) and systemd.exec(5) for the directives.
package units

import (
	"embed"
	"io/fs"
	"sort"
)

//go:embed baton@.service baton@.socket
var files embed.FS

// Names lists the unit files.
func Names() []string {
	ents, _ := fs.ReadDir(files, ".")
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// Read returns one unit file.
func Read(name string) ([]byte, error) { return files.ReadFile(name) }
