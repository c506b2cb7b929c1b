package config

import (
	"errors"

	"github.com/batonhq/baton/internal/execcheck"
)

var errNoCommand = errors.New("no worker command: give it after -- on the command line or as command = [...] in the config file")

// CheckCommand resolves the worker command as the workers' exec shim will,
// in a worker whose PATH is pathEnv (workers inherit baton's) and whose
// working directory is baton's, and reports why executing it would fail:
// not found, not executable, a missing #! interpreter or dynamic loader.
// The error names where the command was set (file, line, column) and wraps
// an *execcheck.Error. It returns the file the command resolves to.
//
// It reads the file system, so it is not part of Finish: a reload or a
// config check runs it when the program is meant to be there.
func (c *Config) CheckCommand(pathEnv string) (string, error) {
	if len(c.Command) == 0 {
		return "", &Error{File: c.Path, Key: "command", Err: errNoCommand}
	}
	path, err := execcheck.Check(c.Command[0], pathEnv)
	if err == nil {
		return path, nil
	}
	if c.commandFromFlags {
		return "", &Error{Key: "worker command", Err: err}
	}
	p := c.pos["command"]
	return "", &Error{File: c.Path, Line: p.Line, Column: p.Column, Key: "command", Err: err}
}
