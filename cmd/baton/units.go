package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/batonhq/baton/units"
)

// unitsCommand prints the embedded unit files, or writes them to a
// directory (e.g. /etc/systemd/system) for installs without the package.
func unitsCommand(args []string) error {
	fs := newFlagSet("units")
	dir := fs.StringP("output", "o", "", "write the unit files into `DIR` (created if missing) instead of printing them")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *dir != "" {
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			return fmt.Errorf("create unit directory: %w", err)
		}
	}
	for _, name := range units.Names() {
		b, err := units.Read(name)
		if err != nil {
			return err
		}
		if *dir == "" {
			fmt.Printf("### %s\n%s\n", name, b)
			continue
		}
		path := filepath.Join(*dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return fmt.Errorf("write unit: %w", err)
		}
		fmt.Println(path)
	}
	return nil
}
