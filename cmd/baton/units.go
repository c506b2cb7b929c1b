package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/batonhq/baton/units"
	"github.com/spf13/pflag"
)

// unitsCommand prints the embedded unit files, or writes them to a
// directory (e.g. /etc/systemd/system) for installs without the package.
func unitsCommand(args []string) error {
	fs := pflag.NewFlagSet("baton units", pflag.ContinueOnError)
	dir := fs.StringP("output", "o", "", "write the unit files into `DIR` instead of printing them")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return usageError{err}
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
