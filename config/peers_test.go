package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/internal/peers"
)

// TestImportDebianFiles imports the configuration files the Debian ntpsec
// and chrony packages ship, from the peers cache (see scripts/peers.sh).
func TestImportDebianFiles(t *testing.T) {
	root := peers.Root(t)
	pools := func(names ...string) []config.Source {
		var s []config.Source
		for _, n := range names {
			src := config.DefaultSource()
			src.Pool, src.IBurst = n, true
			s = append(s, src)
		}
		return s
	}
	for _, tt := range []struct {
		file      string
		flavour   config.Flavour
		sources   []config.Source
		driftFile string
		step      config.Step
		serving   bool
		contains  []string
	}{{
		file:      "etc/ntpsec/ntp.conf",
		flavour:   config.NTP,
		sources:   pools("0.debian.pool.ntp.org", "1.debian.pool.ntp.org", "2.debian.pool.ntp.org", "3.debian.pool.ntp.org"),
		driftFile: "/var/lib/ntpsec/ntp.drift",
		step:      config.Default().Step,
		serving:   true,
		contains:  []string{`pool = "0.debian.pool.ntp.org"`, `driftfile = "/var/lib/ntpsec/ntp.drift"`, "# not imported (line ", "leapfile"},
	}, {
		file:      "usr/share/chrony/chrony.conf",
		flavour:   config.Chrony,
		sources:   pools("2.debian.pool.ntp.org"),
		driftFile: "/var/lib/chrony/chrony.drift",
		step:      config.Default().Step, // makestep 1 3
		serving:   false,
		contains:  []string{`pool = "2.debian.pool.ntp.org"`, "[step]\n", `threshold = "1s"`, "limit = 3", "confdir /etc/chrony/conf.d", "sourcedir /run/chrony-dhcp"},
	}} {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(root, tt.file)
			f, err := os.Open(path)
			if err != nil {
				t.Fatalf("the peers cache has no %s: %v", tt.file, err)
			}
			defer f.Close()
			im, err := config.Import(f, path, config.Auto)
			if err != nil {
				t.Fatal(err)
			}
			if im.Flavour != tt.flavour {
				t.Errorf("read as %q, want %q", im.Flavour, tt.flavour)
			}
			c := im.Config
			if diff := cmp.Diff(tt.sources, c.Sources); diff != "" {
				t.Errorf("sources (-want +got)\n%s", diff)
			}
			if c.DriftFile != tt.driftFile || c.Step != tt.step || c.Server.Enabled != tt.serving {
				t.Errorf("got driftfile %q, step %+v, serving %v; want %q, %+v, %v", c.DriftFile, c.Step, c.Server.Enabled, tt.driftFile, tt.step, tt.serving)
			}
			out := im.TOML()
			for _, s := range tt.contains {
				if !strings.Contains(out, s) {
					t.Errorf("the output has no %q", s)
				}
			}
			if _, err := config.Parse([]byte(out), "imported.toml"); err != nil {
				t.Errorf("config check rejects the output: %v\n%s", err, out)
			}
			t.Logf("%d directives not imported", len(im.Skipped))
		})
	}
}
