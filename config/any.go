package config

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

// LoadAny reads a configuration file that may be ntptool's TOML or an
// existing ntp.conf (ntpd, NTPsec) or chrony.conf, told apart by content
// so that `ntptool run` can replace either daemon with its file unchanged:
// a file whose directives are lines of words (`server time1 iburst`,
// `driftfile /var/lib/…`) is imported (Import), with what could not be
// mapped returned as notes, each with its line, for the log. A TOML file
// (any line that opens a table or sets a key with '=') is loaded as Load
// does. Both are validated.
func LoadAny(path string) (*Config, []Note, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	if isTOML(data) {
		cfg, err := Parse(data, path)
		return cfg, nil, err
	}
	im, err := Import(bytes.NewReader(data), path, Auto)
	if err != nil {
		return nil, nil, err
	}
	cfg := im.Config
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%s (read as %s): %w", path, im.Flavour.file(), err)
	}
	if len(cfg.Sources) == 0 {
		return nil, nil, fmt.Errorf("%s (read as %s): no server or pool directive", path, im.Flavour.file())
	}
	return &cfg, im.Skipped, nil
}

// isTOML reports whether a configuration file is TOML rather than an
// ntp.conf or chrony.conf: one of its lines, comments aside, is a table
// header or a key = value pair (neither dialect of those has either).
func isTOML(data []byte) bool {
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "["):
			return true
		case strings.Contains(line, "="):
			return true
		}
	}
	// Empty: TOML (all defaults), which reports the missing sources.
	return !strings.ContainsAny(string(data), "abcdefghijklmnopqrstuvwxyz")
}
