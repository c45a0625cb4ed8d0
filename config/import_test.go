package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/import")

// importString imports text, failing the test on an error.
func importString(t *testing.T, text, name string, from Flavour) *Imported {
	t.Helper()
	im, err := Import(strings.NewReader(text), name, from)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// checkOutput checks that the TOML of im loads back into im.Config.
func checkOutput(t *testing.T, im *Imported) {
	t.Helper()
	out := im.TOML()
	c, err := Parse([]byte(out), "imported.toml")
	if err != nil {
		t.Fatalf("the imported TOML does not load: %v\n%s", err, out)
	}
	if diff := cmp.Diff(im.Config, *c, ignoreOrigin); diff != "" {
		t.Errorf("the imported TOML loads as another config (-Import +Parse)\n%s\n%s", diff, out)
	}
}

func TestImport(t *testing.T) {
	for _, tt := range []struct {
		name    string
		from    Flavour
		conf    string
		want    func(c *Config) // the changes to Default() the import makes
		skipped []Note
	}{{
		name: "ntp sources and options",
		conf: "server a.example iburst prefer minpoll 4 maxpoll 6\npool p.example\npeer 192.0.2.1 burst\nserver -4 b.example key 5 version 4 noselect\n",
		want: func(c *Config) {
			c.Sources = []Source{
				{Server: "a.example", Port: 123, IBurst: true, Prefer: true, MinPoll: 4, MaxPoll: 6, MaxSources: 4},
				{Pool: "p.example", Port: 123, MinPoll: 6, MaxPoll: 10, MaxSources: 4},
				{Server: "192.0.2.1", Port: 123, MinPoll: 6, MaxPoll: 10, MaxSources: 4},
				{Server: "b.example", Port: 123, MinPoll: 6, MaxPoll: 10, MaxSources: 4},
			}
			c.Server.Enabled = true
		},
		skipped: []Note{
			{3, "peer 192.0.2.1 burst", `"burst": no ntptool equivalent; the rest is imported`},
			{4, "server -4 b.example key 5 version 4 noselect", `"-4", "key 5", "version 4" and "noselect": no ntptool equivalent; the rest is imported`},
		},
	}, {
		name: "invalid, duplicate and reference clock sources",
		from: NTP,
		conf: "server\nserver bad_host!\nserver a.example minpoll 2 maxpoll 30 port 99999\nserver A.EXAMPLE.\nserver 127.127.1.0\npool p.example maxsources 2\n",
		want: func(c *Config) {
			c.Sources = []Source{
				{Server: "a.example", Port: 123, MinPoll: 2, MaxPoll: 10, MaxSources: 4},
				{Pool: "p.example", Port: 123, MinPoll: 6, MaxPoll: 10, MaxSources: 2},
			}
			c.Server.Enabled = true
		},
		skipped: []Note{
			{1, "server", "no address"},
			{2, "server bad_host!", `"bad_host!" is not a host name or IP address`},
			{3, "server a.example minpoll 2 maxpoll 30 port 99999", `"maxpoll 30" and "port 99999": no ntptool equivalent; the rest is imported`},
			{4, "server A.EXAMPLE.", "duplicates line 3"},
			{5, "server 127.127.1.0", whyRefclock},
		},
	}, {
		name: "minpoll above maxpoll",
		from: Chrony,
		conf: "server a.example minpoll 12\nserver b.example maxpoll 4\nserver c.example minpoll 9 maxpoll 8\n",
		want: func(c *Config) {
			c.Sources = []Source{
				{Server: "a.example", Port: 123, MinPoll: 12, MaxPoll: 12, MaxSources: 4},
				{Server: "b.example", Port: 123, MinPoll: 4, MaxPoll: 4, MaxSources: 4},
				{Server: "c.example", Port: 123, MinPoll: 9, MaxPoll: 9, MaxSources: 4},
			}
		},
	}, {
		name: "ntp restrict default ignore",
		conf: "restrict default ignore\nrestrict -6 default ignore\nrestrict 192.0.2.0 mask 255.255.255.0 nomodify\nrestrict 2001:db8::/32\nrestrict 192.0.2.128 mask 255.255.255.128 noserve\nrestrict 10.0.0.0 mask 255.0.255.0\nrestrict ntp.example\nrestrict source nomodify\nrestrict default notrust\n",
		want: func(c *Config) {
			c.Server.Enabled = true
			c.Server.Allow = []string{"192.0.2.0/24", "2001:db8::/32"}
			c.Server.Deny = []string{"192.0.2.128/25"}
		},
		skipped: []Note{
			{6, "restrict 10.0.0.0 mask 255.0.255.0", "not an address, address/bits or address and mask (host names are not supported)"},
			{7, "restrict ntp.example", "not an address, address/bits or address and mask (host names are not supported)"},
			{8, "restrict source nomodify", "applies to the servers that pool directives find; ntptool always accepts replies from its sources"},
			{9, "restrict default notrust", `"notrust": no ntptool equivalent; the rest is imported`},
		},
	}, {
		name: "ntp restrict: IPv4 only locked down",
		conf: "restrict -4 default ignore\nrestrict 127.0.0.1\nrestrict ::1\n",
		want: func(c *Config) {
			c.Server.Enabled = true
			c.Server.Allow = []string{"127.0.0.1/32", "::/0"}
		},
	}, {
		name: "ntp restrict: nobody is served",
		conf: "restrict default ignore\nserver a.example\n",
		want: func(c *Config) {
			c.Sources = []Source{{Server: "a.example", Port: 123, MinPoll: 6, MaxPoll: 10, MaxSources: 4}}
		},
	}, {
		name: "ntp rate limiting",
		conf: "restrict default limited\ndiscard average 4 minimum 1\n",
		want: func(c *Config) {
			c.Server.Enabled = true
			c.Server.RateLimit.KoD = false
			c.Server.RateLimit.Interval = Duration{16 * time.Second}
		},
		skipped: []Note{{2, "discard average 4 minimum 1", `"minimum 1": no ntptool equivalent; the rest is imported`}},
	}, {
		name: "ntp tinker and tos",
		conf: "tinker panic 0 step 0.25 stepout 900\ntos orphan 7 maxclock 5\ntos minsane 2\ntinker dispersion 15\n",
		want: func(c *Config) {
			c.Server.Enabled = true
			c.Server.LocalStratum = 7
			c.Step = Step{Threshold: Duration{250 * time.Millisecond}, Limit: -1}
		},
		skipped: []Note{
			{1, "tinker panic 0 step 0.25 stepout 900", `"stepout 900": no ntptool equivalent; the rest is imported`},
			{2, "tos orphan 7 maxclock 5", `"maxclock 5": no ntptool equivalent; the rest is imported`},
			{3, "tos minsane 2", whyNone},
			{4, "tinker dispersion 15", whyNone},
		},
	}, {
		name: "ntp tinker step 0 never steps",
		conf: "tinker step 0 panic 2000\n",
		want: func(c *Config) {
			c.Server.Enabled = true
			c.Step.SlewOnly = true
			c.Step.Panic = Duration{2000 * time.Second}
		},
	}, {
		name: "ntp tinker step above panic",
		conf: "tinker step 2000\n",
		want: func(c *Config) {
			c.Server.Enabled = true
			c.Step = Step{Threshold: Duration{2000 * time.Second}, Limit: -1}
		},
	}, {
		name: "chrony serving",
		conf: "allow 192.168\nallow 2001:db8::/32\ndeny 192.168.7.1\nallow host.example\nallow 1.2.3.4 5.6.7.8\nlocal stratum 9 orphan distance 1.5\nratelimit interval 2 burst 4 leak 3\nport 11123\nmaxslewrate 500\nmakestep 0.5 -5\n",
		want: func(c *Config) {
			c.Server.Enabled = true
			c.Server.Allow = []string{"192.168.0.0/16", "2001:db8::/32"}
			c.Server.Deny = []string{"192.168.7.1/32"}
			c.Server.LocalStratum = 9
			c.Server.Listen = []string{":11123"}
			c.Server.RateLimit.Interval = Duration{4 * time.Second}
			c.Server.RateLimit.Burst = 4
			c.Clock.MaxSlewRatePPM = 500
			c.Step.Threshold = Duration{500 * time.Millisecond}
			c.Step.Limit = -1
		},
		skipped: []Note{
			{4, "allow host.example", "not an address or subnet (host names are not supported)"},
			{5, "allow 1.2.3.4 5.6.7.8", "want at most one subnet"},
			{6, "local stratum 9 orphan distance 1.5", `"orphan" and "distance 1.5": no ntptool equivalent; the rest is imported`},
			{7, "ratelimit interval 2 burst 4 leak 3", `"leak 3": no ntptool equivalent; the rest is imported`},
		},
	}, {
		name: "chrony allow all",
		conf: "allow all\nallow 10/8\nratelimit\nlocal\n",
		want: func(c *Config) {
			c.Server.Enabled = true
			c.Server.LocalStratum = 10
			c.Server.RateLimit.Interval = Duration{8 * time.Second}
			c.Server.RateLimit.Burst = 8
		},
	}, {
		name: "chrony client with odd values",
		conf: "pool p.example maxsources 3\nmakestep 3000 3\nmakestep 1\nmaxslewrate 200000\nport 0\nallow\nrestrict default\ntos orphan 1\n",
		want: func(c *Config) {
			c.Sources = []Source{{Pool: "p.example", Port: 123, MinPoll: 6, MaxPoll: 10, MaxSources: 3}}
			c.Step = Step{Threshold: Duration{3000 * time.Second}, Limit: 3}
		},
		skipped: []Note{
			{3, "makestep 1", "want makestep THRESHOLD LIMIT: seconds (0 or more) and a whole number"},
			{4, "maxslewrate 200000", "want a rate above 0 and at most 100000 ppm"},
			{7, "restrict default", "an ntp.conf directive, but the file is read as chrony.conf"},
			{8, "tos orphan 1", "an ntp.conf directive, but the file is read as chrony.conf"},
		},
	}, {
		name: "driftfile and directives with no equivalent",
		conf: "driftfile /var/lib/chrony/drift\ndriftfile relative\nrtcsync\nconfdir /etc/chrony/conf.d\nfrobnicate 3\nkeyfile /etc/chrony.keys\n",
		want: func(c *Config) { c.DriftFile = "/var/lib/chrony/drift" },
		skipped: []Note{
			{2, "driftfile relative", "want one absolute path"},
			{3, "rtcsync", whyRTCSync},
			{4, "confdir /etc/chrony/conf.d", whyInclude},
			{5, "frobnicate 3", "unknown directive"},
			{6, "keyfile /etc/chrony.keys", whyAuth},
		},
	}, {
		name: "comments and blank lines",
		from: Chrony,
		conf: "# comment\n! chrony comment\n; another\n% another\n\n   \t\nserver a.example iburst # trailing comment\r\n",
		want: func(c *Config) {
			c.Sources = []Source{{Server: "a.example", Port: 123, IBurst: true, MinPoll: 6, MaxPoll: 10, MaxSources: 4}}
		},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			im := importString(t, tt.conf, "test.conf", tt.from)
			want := Default()
			tt.want(&want)
			if diff := cmp.Diff(want, im.Config, ignoreOrigin); diff != "" {
				t.Errorf("Config (-want +got)\n%s", diff)
			}
			if diff := cmp.Diff(tt.skipped, im.Skipped); diff != "" {
				t.Errorf("Skipped (-want +got)\n%s", diff)
			}
			checkOutput(t, im)
		})
	}
}

func TestImportDetect(t *testing.T) {
	for _, tt := range []struct {
		name, file, conf string
		from             Flavour
		want             Flavour
	}{
		{"chrony directives", "x.conf", "server a\nmakestep 1 3\nrtcsync\n", Auto, Chrony},
		{"ntp directives", "x.conf", "server a\nrestrict default\n", Auto, NTP},
		{"more chrony than ntp", "x.conf", "allow\ndeny 10\nrestrict default\n", Auto, Chrony},
		{"tie: chrony file name", "/etc/chrony/chrony.conf", "server a\n", Auto, Chrony},
		{"tie: ntp by default", "/etc/ntp.conf", "server a\n", Auto, NTP},
		{"forced", "chrony.conf", "makestep 1 3\n", NTP, NTP},
	} {
		t.Run(tt.name, func(t *testing.T) {
			im := importString(t, tt.conf, tt.file, tt.from)
			if im.Flavour != tt.want || im.Detected != (tt.from == Auto) {
				t.Errorf("got %q (detected %v), want %q", im.Flavour, im.Detected, tt.want)
			}
		})
	}
}

func TestImportGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/import/*.conf")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			f, err := os.Open(in)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			im, err := Import(f, filepath.Base(in), Auto)
			if err != nil {
				t.Fatal(err)
			}
			got := im.TOML()
			golden := strings.TrimSuffix(in, ".conf") + ".toml"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s (-want +got)\n%s", golden, diff)
			}
			checkOutput(t, im)
		})
	}
}

func TestImportDeterministic(t *testing.T) {
	data, err := os.ReadFile("testdata/import/ntp-locked.conf")
	if err != nil {
		t.Fatal(err)
	}
	first := importString(t, string(data), "a", Auto).TOML()
	for range 20 {
		if again := importString(t, string(data), "a", Auto).TOML(); again != first {
			t.Fatalf("outputs differ:\n%s", cmp.Diff(first, again))
		}
	}
}

func TestImportUnknownFlavour(t *testing.T) {
	if _, err := Import(strings.NewReader(""), "x", "openntpd"); err == nil {
		t.Error("want an error")
	}
}

func TestParseFlavour(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Flavour
		ok   bool
	}{
		{"", Auto, true}, {"auto", Auto, true}, {"ntp", NTP, true}, {"NTPsec", NTP, true},
		{"ntpd", NTP, true}, {"chrony", Chrony, true}, {"openntpd", Auto, false},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFlavour(tt.in)
			if got != tt.want || (err == nil) != tt.ok {
				t.Errorf("got %q, %v; want %q, ok %v", got, err, tt.want, tt.ok)
			}
		})
	}
}
