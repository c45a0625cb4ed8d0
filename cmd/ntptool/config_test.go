package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeFile writes a file in a temporary directory and returns its path.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigCheck(t *testing.T) {
	good := writeFile(t, "good.toml", "[[source]]\npool = \"pool.ntp.org\"\niburst = true\n")
	bad := writeFile(t, "bad.toml", "[[source]]\nserver = \"a.example\"\nminpoll = 12\nminpol = 3\n[log]\nlevel = \"loud\"\n")
	syntax := writeFile(t, "syntax.toml", "[step\n")
	for _, tt := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{{
		name:       "valid",
		args:       []string{"config", "check", good},
		wantStdout: good + ": OK\n",
	}, {
		name:     "every problem",
		args:     []string{"config", "check", bad},
		wantCode: exitFailure,
		wantStdout: bad + ":3: source[0].minpoll: 12 is greater than maxpoll 10\n" +
			bad + ":4: source[0].minpol: unknown key\n" +
			bad + `:6: log.level: "loud": want one of "debug", "info", "warn" or "error"` + "\n" +
			bad + ": 3 problem(s)\n",
	}, {
		name:       "syntax error",
		args:       []string{"config", "check", syntax},
		wantCode:   exitFailure,
		wantStdout: syntax + ":1:6: expected '.' or ']' to end table name, but got '\\n' instead\n" + syntax + ": 1 problem(s)\n",
	}, {
		name:       "missing file",
		args:       []string{"config", "check", "/nonexistent/ntptool.toml"},
		wantCode:   exitFailure,
		wantStderr: "ntptool: read config: open /nonexistent/ntptool.toml: no such file or directory\n",
	}, {
		name:       "no file",
		args:       []string{"config", "check"},
		wantCode:   exitUsage,
		wantStderr: "ntptool: ntptool config check: need exactly 1 FILE (see 'ntptool config check --help')\n",
	}, {
		name:       "two files",
		args:       []string{"config", "check", good, good},
		wantCode:   exitUsage,
		wantStderr: "ntptool: ntptool config check: need exactly 1 FILE (see 'ntptool config check --help')\n",
	}} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.wantStdout, stdout); diff != "" {
				t.Errorf("stdout (-want +got)\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStderr, stderr); diff != "" {
				t.Errorf("stderr (-want +got)\n%s", diff)
			}
		})
	}
}

func TestConfigImport(t *testing.T) {
	chrony := writeFile(t, "chrony.conf", "pool 2.debian.pool.ntp.org iburst\nmakestep 1 3\nrtcsync\nallow 192.168.0.0/16\n")
	for _, tt := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string // substrings
		wantStderr string
	}{{
		name:       "detected",
		args:       []string{"config", "import", chrony},
		wantStdout: []string{"imported from " + chrony + " (read as chrony.conf, detected", "# not imported (line 3): rtcsync — ", `pool = "2.debian.pool.ntp.org"`, `allow = ["192.168.0.0/16"]`},
		wantStderr: chrony + ": read as chrony; 1 directive(s) not imported (see the comments)\n",
	}, {
		name:       "forced",
		args:       []string{"config", "import", "--from", "ntp", chrony},
		wantStdout: []string{"(read as ntp.conf, as asked)", "# not imported (line 2): makestep 1 3 — a chrony.conf directive, but the file is read as ntp.conf"},
		wantStderr: chrony + ": read as ntp; 3 directive(s) not imported (see the comments)\n",
	}, {
		name:       "bad flavour",
		args:       []string{"config", "import", "--from", "openntpd", chrony},
		wantCode:   exitUsage,
		wantStderr: "ntptool: --from: unknown flavour \"openntpd\": want ntp, chrony or auto (see 'ntptool config import --help')\n",
	}, {
		name:       "missing file",
		args:       []string{"config", "import", "/nonexistent/ntp.conf"},
		wantCode:   exitFailure,
		wantStderr: "ntptool: open /nonexistent/ntp.conf: no such file or directory\n",
	}, {
		name:       "no file",
		args:       []string{"config", "import"},
		wantCode:   exitUsage,
		wantStderr: "ntptool: ntptool config import: need exactly 1 FILE (see 'ntptool config import --help')\n",
	}} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			for _, s := range tt.wantStdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout has no %q:\n%s", s, stdout)
				}
			}
			if diff := cmp.Diff(tt.wantStderr, stderr); diff != "" {
				t.Errorf("stderr (-want +got)\n%s", diff)
			}
		})
	}
}

// TestConfigImportThenCheck is the round trip an operator does: import,
// write the result, check it.
func TestConfigImportThenCheck(t *testing.T) {
	conf := writeFile(t, "ntp.conf", "driftfile /var/lib/ntp/ntp.drift\nserver a.example iburst\nrestrict default ignore\nrestrict 192.0.2.0 mask 255.255.255.0\nkeys /etc/ntp/keys\n")
	code, stdout, stderr := runCmd(t, "config", "import", conf)
	if code != exitOK {
		t.Fatalf("import: exit code %d: %s", code, stderr)
	}
	imported := writeFile(t, "ntptool.toml", stdout)
	code, stdout, stderr = runCmd(t, "config", "check", imported)
	if code != exitOK || stdout != imported+": OK\n" {
		t.Errorf("check: exit code %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

func TestConfigDefault(t *testing.T) {
	code, stdout, stderr := runCmd(t, "config", "default")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	for _, s := range []string{"[step]\n", `threshold = "1s"`, "maxpoll = 10", `listen = [":123"]`, "table_size = 65536"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("output has no %q", s)
		}
	}
	path := writeFile(t, "default.toml", stdout)
	if code, stdout, _ := runCmd(t, "config", "check", path); code != exitOK {
		t.Errorf("config check rejects config default: %s", stdout)
	}
	if code, _, _ := runCmd(t, "config", "default", "extra"); code != exitUsage {
		t.Errorf("config default extra: exit code %d, want %d", code, exitUsage)
	}
}

func TestConfigUnknownSubcommand(t *testing.T) {
	if code, _, _ := runCmd(t, "config", "lint"); code != exitUsage {
		t.Errorf("exit code %d, want %d", code, exitUsage)
	}
}
