package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// addSeeds adds the files matching the patterns to the fuzz corpus.
func addSeeds(f *testing.F, patterns ...string) {
	for _, p := range patterns {
		files, _ := filepath.Glob(p)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
}

func FuzzParse(f *testing.F) {
	addSeeds(f, "testdata/*.toml", "testdata/import/*.toml")
	f.Add([]byte(DefaultTOML()))
	for _, s := range []string{
		"[[source]]\nserver = \"a\"\nport = \"x\"\n",
		"source = [{server = \"a\"}, {pool = \"b\", bogus = 1}]\n",
		"a = 1979-05-27 07:32:00Z\nb = \"\"\"\n[c]\n\"\"\"\n",
		"[step]\nthreshold = 1e300\n",
		"[serverr]\nx.y = 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.toml")
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Problems) == 0 {
				t.Fatalf("got %T %v, want a *ValidationError with problems", err, err)
			}
			_ = verr.Error()
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
		}
	})
}

func FuzzImport(f *testing.F) {
	addSeeds(f, "testdata/import/*.conf", "../.cache/peers/root/etc/ntpsec/ntp.conf", "../.cache/peers/root/usr/share/chrony/chrony.conf")
	f.Add([]byte("server a iburst minpoll 12\nrestrict default ignore\nrestrict 10.0.0.0 mask 255.0.0.0\ntinker step 2000\n"))
	f.Add([]byte("allow 10\ndeny 10.1\nlocal stratum 3\nratelimit interval -20 burst 1\nmakestep 1e9 -1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, from := range []Flavour{NTP, Chrony} {
			im, err := Import(strings.NewReader(string(data)), "fuzz.conf", from)
			if err != nil {
				t.Fatal(err)
			}
			out := im.TOML()
			if _, err := Parse([]byte(out), "imported.toml"); err != nil {
				t.Fatalf("the output of importing as %s does not load: %v\n%s", from, err, out)
			}
		}
	})
}
