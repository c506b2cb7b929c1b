package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds the config parser arbitrary documents: it never panics,
// and every error it returns is a config Error that says where (a line) or
// what (a key).
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	for _, p := range []string{"../../packaging/example.toml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("command = [\"a\"]\nworkers = 0\n"))
	f.Add([]byte("command=[\"a\"]\n[sockets.a]\nlisten = \"127.0.0.1:1\"\n[sockets.b]\nlisten = \"127.0.0.1:1\"\n"))
	f.Add([]byte("sockets.web.listen = \"unix:///x\"\nsockets.web.mode = \"0600\"\ncommand=[\"x\"]\n"))
	f.Add([]byte("[[sockets]]\nlisten = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join("fuzz", "app.toml")
		c, err := parse(path, data)
		if err == nil {
			err = c.Finish()
		}
		if err == nil {
			return
		}
		for _, e := range leaves(err) {
			var ce *Error
			if !errors.As(e, &ce) {
				t.Fatalf("error %q (%T) is not a config Error", e, e)
			}
			if ce.Line == 0 && ce.Key == "" {
				t.Fatalf("error %q names neither a line nor a key", e)
			}
			if ce.Line > 0 && ce.File != path {
				t.Fatalf("error %q does not name the file", e)
			}
		}
	})
}

// leaves unpacks errors.Join.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}
