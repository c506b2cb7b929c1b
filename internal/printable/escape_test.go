package printable

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"serving 12 req/s":                 "serving 12 req/s",
		"héllo wörld ✓ 日本語 😀":              "héllo wörld ✓ 日本語 😀",
		"\x1b]0;pwned\x07\x1b[2J":          `\x1b]0;pwned\x07\x1b[2J`,
		"a\rb\tc\nd":                       `a\rb\tc\nd`,
		"del\x7f":                          `del\x7f`,
		"c1 \u009b31m csi":                 `c1 \u009b31m csi`,
		"bidi \u202egnp.exe":               `bidi \u202egnp.exe`,
		"bad \xff\xfe utf8 \xe2\x82":       `bad \xff\xfe utf8 \xe2\x82`,
		`back\slash \x1b`:                  `back\\slash \\x1b`,
		"nul\x00":                          `nul\x00`,
		"tag \U000E0041":                   `tag \U000e0041`,
		"replacement char \uFFFD is valid": "replacement char \uFFFD is valid",
	} {
		got := Escape(in)
		if got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("Escape(%q) is not UTF-8", in)
		}
	}
	if got := EscapeLines("line 1\nline\x1b 2\r\n"); got != "line 1\nline\\x1b 2\\r\n" {
		t.Errorf("EscapeLines: %q", got)
	}
}

func FuzzEscape(f *testing.F) {
	f.Add("\x1b[31mred\u009b\xff")
	f.Fuzz(func(t *testing.T, s string) {
		for _, keep := range []bool{false, true} {
			got := escape(s, keep)
			if !utf8.ValidString(got) {
				t.Fatalf("%q: not UTF-8: %q", s, got)
			}
			for _, r := range got {
				if r == '\n' && keep {
					continue
				}
				if !ok(r) {
					t.Fatalf("%q escaped to %q, which holds %U", s, got, r)
				}
			}
			if utf8.ValidString(s) && !strings.ContainsAny(s, "\\") && clean(s, keep) && got != s {
				t.Fatalf("clean %q changed to %q", s, got)
			}
		}
	})
}
