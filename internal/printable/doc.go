// Package printable makes text that baton did not write (a worker's
// STATUS=, an error that quotes it) safe to show on an operator's
// terminal: printable UTF-8 passes unchanged; C0 and C1 control
// characters, DEL, Unicode format characters (bidirectional overrides)
// and bytes that are not UTF-8 are shown as Go escapes (\x1b, \u009b,
// \u202e, \xff), so that no terminal escape sequence gets through and
// nothing is hidden. A backslash is doubled, so that escapes are never
// ambiguous.
package printable
