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
