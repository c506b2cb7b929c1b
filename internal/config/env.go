package config

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// EnvPrefix starts every variable that carries a setting.
const EnvPrefix = "BATON_"

// EnvName is the variable for the flag called name: BATON_ and the name
// in upper case, dashes as underscores (--boot-timeout: BATON_BOOT_TIMEOUT).
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// ApplyEnv gives every flag of the set that the command line left unset
// the value of its variable (EnvName), when lookup finds one that is not
// empty: flags override the environment, which overrides the file. Flags
// named in except, and --help, are left alone. A repeatable flag (--bind) takes a
// comma-separated list from its one variable.
//
// Call it after parsing and before Resolve. Errors, then and in Resolve,
// name the variable a value came from.
func (f *Flags) ApplyEnv(lookup func(string) (string, bool), except ...string) error {
	var err error
	f.fs.VisitAll(func(fl *pflag.Flag) {
		if err != nil || fl.Changed || skipEnv(fl, except) {
			return
		}
		name := EnvName(fl.Name)
		v, ok := lookup(name)
		if !ok || strings.TrimSpace(v) == "" {
			return
		}
		values := []string{v}
		if _, repeatable := fl.Value.(pflag.SliceValue); repeatable {
			values = splitList(v)
		}
		for _, one := range values {
			if serr := f.fs.Set(fl.Name, one); serr != nil {
				err = &Error{Key: name, Err: setError(fl, one, serr)}
				return
			}
		}
		if f.fromEnv == nil {
			f.fromEnv = map[string]string{}
		}
		f.fromEnv[fl.Name] = name
	})
	return err
}

// EnvNames lists the variables ApplyEnv reads: one per flag of the set,
// but those in except.
func (f *Flags) EnvNames(except ...string) []string {
	var names []string
	f.fs.VisitAll(func(fl *pflag.Flag) {
		if !skipEnv(fl, except) {
			names = append(names, EnvName(fl.Name))
		}
	})
	return names
}

// WithoutEnv is environ without the variables that carry baton's own
// settings (EnvNames), which are meant for baton and not for its workers.
func (f *Flags) WithoutEnv(environ []string) []string {
	mine := map[string]bool{}
	for _, n := range f.EnvNames() {
		mine[n] = true
	}
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !mine[name] {
			out = append(out, kv)
		}
	}
	return out
}

// key names where the flag called name got its value: its variable, or
// the flag itself.
func (f *Flags) key(name string) string {
	if v, ok := f.fromEnv[name]; ok {
		return v
	}
	return "--" + name
}

// setError rewrites pflag's parse errors, which name Go's parsers, in the
// terms of the setting.
func setError(fl *pflag.Flag, value string, err error) error {
	switch fl.Value.Type() {
	case "int", "int64", "int32", "uint", "uint64", "uint32":
		return fmt.Errorf("%q is not a number", value)
	case "bool":
		return fmt.Errorf("%q is not true or false", value)
	}
	return fmt.Errorf("%q: %w", value, err)
}

// splitList splits a repeatable flag's variable at commas, trimming
// spaces around each item and dropping empty ones.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// skipEnv says whether fl has no variable: --help, and those in except.
func skipEnv(fl *pflag.Flag, except []string) bool {
	return fl.Name == "help" || contains(except, fl.Name)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
