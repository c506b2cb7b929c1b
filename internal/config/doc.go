// Package config owns baton's settings: the TOML config file (parsed
// strictly: an unknown key, a wrong type or a bad value is an error naming
// file, line, column and key), command-line overrides, defaults and
// validation. A Config is validated once, by Load or Finish; everything
// downstream trusts it.
//
// Durations follow Go's syntax ("30s", "1m30s") or "infinity", as systemd's
// time spans in systemd.time(7) do for "disabled".
package config
