package printable

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s with everything but printable characters and spaces
// escaped, newlines and tabs included: for one cell or line of output.
func Escape(s string) string { return escape(s, false) }

// EscapeLines is Escape keeping newlines, for messages of several lines.
func EscapeLines(s string) string { return escape(s, true) }

func escape(s string, keepNewlines bool) string {
	if clean(s, keepNewlines) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n' && keepNewlines:
			b.WriteByte('\n')
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x80 && !ok(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case !ok(r) && r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		case !ok(r):
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// ok is a character shown as itself: printable (letters, marks, numbers,
// punctuation, symbols) or a plain space.
func ok(r rune) bool {
	return r == ' ' || unicode.IsPrint(r)
}

// clean is the fast path: nothing to escape.
func clean(s string, keepNewlines bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return cleanSlow(s[i:], keepNewlines)
		}
		if c == '\\' || (c < ' ' && !(keepNewlines && c == '\n')) || c == 0x7f {
			return false
		}
	}
	return true
}

func cleanSlow(s string, keepNewlines bool) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\\' || (r == utf8.RuneError && size == 1) || (!ok(r) && !(keepNewlines && r == '\n')) {
			return false
		}
		i += size
	}
	return true
}
