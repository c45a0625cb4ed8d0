package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// LoadAny tells ntptool TOML from ntp.conf and chrony.conf by content and
// validates both; what an import leaves out comes back with its line.
func TestLoadAny(t *testing.T) {
	tests := []struct {
		name, file, text string
		wantServers      []string
		wantNotes        int // at least
		wantErr          string
	}{
		{"toml", "ntptool.toml", "[[source]]\nserver = \"time1\"\n", []string{"time1"}, 0, ""},
		{"toml with comments first", "x.conf", "# my config\n\n[[source]] # first\nserver = \"a\"\n", []string{"a"}, 0, ""},
		{"ntp.conf", "ntp.conf", "driftfile /var/lib/ntp/drift\nserver time1 iburst\nrestrict default nomodify\n", []string{"time1"}, 0, ""},
		{"chrony.conf", "chrony.conf", "pool 2.debian.pool.ntp.org iburst\nmakestep 1 3\nrtcsync\n", nil, 1, ""},
		{"bad toml", "x.toml", "[[source]]\nserver = 3\n", nil, 0, "server"},
		{"no source in ntp.conf", "ntp.conf", "driftfile /x\n", nil, 0, "no server or pool"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, notes, err := LoadAny(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var servers []string
			for _, s := range cfg.Sources {
				if s.Server != "" {
					servers = append(servers, s.Server)
				}
			}
			if strings.Join(servers, ",") != strings.Join(tc.wantServers, ",") || len(notes) < tc.wantNotes {
				t.Errorf("servers %v, %d notes; want %v, at least %d", servers, len(notes), tc.wantServers, tc.wantNotes)
			}
			for _, n := range notes {
				if n.Line < 1 {
					t.Errorf("note %v without a line", n)
				}
			}
		})
	}
}
