package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// ignoreOrigin compares Configs without where they were read from.
var ignoreOrigin = cmpopts.IgnoreUnexported(Config{})

func sec(s float64) Duration { return Duration{time.Duration(s * float64(time.Second))} }

// mustParse parses a configuration the test expects to be valid.
func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Parse([]byte(text), "test.toml")
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, text)
	}
	return c
}

// problems parses a configuration the test expects to be invalid.
func problems(t *testing.T, text string) []Problem {
	t.Helper()
	_, err := Parse([]byte(text), "test.toml")
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Parse: got error %v, want a *ValidationError\n%s", err, text)
	}
	if verr.File != "test.toml" {
		t.Errorf("File = %q, want test.toml", verr.File)
	}
	return verr.Problems
}

func TestParseEmptyIsDefault(t *testing.T) {
	c := mustParse(t, "# nothing but a comment\n")
	if diff := cmp.Diff(Default(), *c, ignoreOrigin); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestDefaultTOMLRoundTrip(t *testing.T) {
	c := mustParse(t, DefaultTOML())
	want := Default()
	// An empty TOML array decodes as an empty slice, not nil.
	want.Server.Allow, want.Server.Deny = []string{}, []string{}
	want.Hooks.PreStep, want.Hooks.PostStep, want.Hooks.ExternalStep = [][]string{}, [][]string{}, [][]string{}
	if diff := cmp.Diff(want, *c, ignoreOrigin); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestLoadFull(t *testing.T) {
	c, err := Load("testdata/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Sources: []Source{
			{Server: "ntp1.example.net", Port: 10123, IBurst: true, MinPoll: 4, MaxPoll: 8, Prefer: true, MaxSources: 4},
			{Pool: "pool.example.net", Port: 123, MinPoll: 6, MaxPoll: 10, MaxSources: 6},
		},
		DriftFile: "/var/lib/ntptool/other.drift",
		Step:      Step{Threshold: sec(0.5), Limit: -1, Panic: sec(600), SlewOnly: true},
		Clock:     Clock{Control: false, MaxSlewRatePPM: 500},
		Server: Server{
			Enabled:      true,
			Listen:       []string{"127.0.0.1:11123", "[::1]:11123"},
			Allow:        []string{"192.0.2.0/24", "2001:db8::/32", "198.51.100.7"},
			Deny:         []string{"192.0.2.128/25"},
			DenyKoD:      true,
			LocalStratum: 10,
			RateLimit:    RateLimit{Enabled: false, Interval: sec(2), Burst: 4, KoD: false, TableSize: 1024},
		},
		Hooks: Hooks{
			PreStep:      [][]string{{"/usr/local/bin/before", "--step"}},
			PostStep:     [][]string{{"/usr/local/bin/after"}},
			ExternalStep: [][]string{{"/usr/bin/logger", "clock stepped"}},
			DHCPRenew:    "networkd",
			Timeout:      sec(30),
			OnFailure:    "abort",
			// Renewers: all switched off in the file.
			PostStepOnFailure:     "abort",
			ExternalStepOnFailure: "abort",
		},
		Control: Control{Socket: "", Group: "ntp"},
		Metrics: Metrics{Listen: "127.0.0.1:9123"},
		Audit:   Audit{Journal: "/var/log/ntptool/other.jsonl"},
		Log:     Log{Level: "debug", Format: "json"},
		Run:     Run{User: "ntptool"},
	}
	if diff := cmp.Diff(want, *c, ignoreOrigin); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "nope.toml") {
		t.Errorf("got %v, want a not-exist error naming the file", err)
	}
}

func TestLoadReportsFileName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(path, []byte("[log]\nlevel = \"loud\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + `:2: log.level: "loud": want one of "debug", "info", "warn" or "error"`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestSourceDefaults(t *testing.T) {
	c := mustParse(t, `
[[source]]
server = "a.example"
maxpoll = 8

[[source]]
pool = "b.example"
port = 1123
minpoll = 4
maxsources = 2

[[source]]
server = "c.example"
`)
	want := []Source{
		{Server: "a.example", Port: 123, MinPoll: 6, MaxPoll: 8, MaxSources: 4},
		{Pool: "b.example", Port: 1123, MinPoll: 4, MaxPoll: 10, MaxSources: 2},
		{Server: "c.example", Port: 123, MinPoll: 6, MaxPoll: 10, MaxSources: 4},
	}
	if diff := cmp.Diff(want, c.Sources); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestSourceDefaultsInlineArray(t *testing.T) {
	c := mustParse(t, `source = [{server = "a.example", port = 5}, {pool = "b.example"}]`)
	want := []Source{
		{Server: "a.example", Port: 5, MinPoll: 6, MaxPoll: 10, MaxSources: 4},
		{Pool: "b.example", Port: 123, MinPoll: 6, MaxPoll: 10, MaxSources: 4},
	}
	if diff := cmp.Diff(want, c.Sources); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

// TestParseErrors covers what stops decoding (syntax and type errors) and
// unknown keys.
func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		want       []Problem
	}{{
		name: "syntax error has line and column",
		text: "[step]\nlimit = 3\nthreshold = = 1\n",
		want: []Problem{{Line: 3, Col: 13, Msg: "expected value but found '=' instead"}},
	}, {
		name: "unterminated table header",
		text: "driftfile = \"/x\"\n[server\n",
		want: []Problem{{Line: 2, Col: 8, Msg: `expected '.' or ']' to end table name, but got '\n' instead`}},
	}, {
		name: "duplicate key",
		text: "[log]\nlevel = \"info\"\nlevel = \"debug\"\n",
		want: []Problem{{Line: 3, Col: 1, Msg: `Key 'log.level' has already been defined.`}},
	}, {
		name: "wrong type",
		text: "[step]\nlimit = \"3\"\n",
		want: []Problem{{Key: "step.limit", Line: 2, Msg: "incompatible types: TOML value has type string; destination has type integer"}},
	}, {
		name: "wrong type in the second source",
		text: "[[source]]\nserver = \"a\"\nport = 1\n[[source]]\nserver = \"b\"\nport = \"x\"\n[[source]]\nport = 3\n",
		want: []Problem{{Key: "source[1].port", Line: 6, Msg: "incompatible types: TOML value has type string; destination has type integer"}},
	}, {
		name: "section that is not a table",
		text: "step = 1\n",
		want: []Problem{{Key: "step", Line: 1, Msg: "type mismatch for config.Step: expected table but found int64"}},
	}, {
		name: "bad duration",
		text: "\n[hooks]\ntimeout = \"10 seconds\"\n",
		want: []Problem{{Key: "hooks.timeout", Line: 3, Msg: `invalid duration "10 seconds": want a number and a unit, like "1s" or "500ms"`}},
	}, {
		name: "duration of the wrong type",
		text: "[step]\npanic = true\n",
		want: []Problem{{Key: "step.panic", Line: 2, Msg: `want a duration like "1s" or a number of seconds, not a boolean`}},
	}, {
		name: "unknown keys, all of them, with lines",
		text: "drift_file = \"/x\"\n[step]\nlimit = 3\nthreshhold = \"1s\"\n[[source]]\nserver = \"a\"\n[[source]]\nserver = \"b\"\nminpol = 4\n",
		want: []Problem{
			{Key: "drift_file", Line: 1, Msg: "unknown key"},
			{Key: "step.threshhold", Line: 4, Msg: "unknown key"},
			{Key: "source[1].minpol", Line: 9, Msg: "unknown key"},
		},
	}, {
		name: "unknown table is reported once",
		text: "[serverr]\nenabled = true\nlisten = []\n[serverr.ratelimit]\nburst = 1\n",
		want: []Problem{{Key: "serverr", Line: 1, Msg: "unknown key"}},
	}, {
		name: "unknown dotted and inline keys",
		text: "server.ratelimit.brust = 3\nlog = {level = \"info\", colour = true}\n",
		want: []Problem{
			{Key: "server.ratelimit.brust", Line: 1, Msg: "unknown key"},
			{Key: "log.colour", Line: 2, Msg: "unknown key"},
		},
	}, {
		name: "keys are case sensitive",
		text: "[[source]]\nserver = \"a\"\nMinPoll = 4\n",
		want: []Problem{{Key: "source[0].MinPoll", Line: 3, Msg: `unknown key (keys are case sensitive: did you mean "source.minpoll"?)`}},
	}, {
		name: "unknown keys and invalid values together, by line",
		text: "[log]\nlevel = \"loud\"\n[step]\nlimit = -2\nstep = 1\n",
		want: []Problem{
			{Key: "log.level", Line: 2, Msg: `"loud": want one of "debug", "info", "warn" or "error"`},
			{Key: "step.limit", Line: 4, Msg: "-2: want -1 (step at any time) or a count of at least 0"},
			{Key: "step.step", Line: 5, Msg: "unknown key"},
		},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, problems(t, tt.text)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// TestValidate has a case for every check of Validate.
func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		want       []Problem
	}{{
		name: "source with neither server nor pool",
		text: "[[source]]\niburst = true\n",
		want: []Problem{{Key: "source[0]", Line: 1, Msg: "set server or pool"}},
	}, {
		name: "source with both",
		text: "[[source]]\nserver = \"a\"\npool = \"b\"\n",
		want: []Problem{{Key: "source[0]", Line: 1, Msg: "set either server or pool, not both"}},
	}, {
		name: "empty host",
		text: "[[source]]\nserver = \"\"\n",
		want: []Problem{{Key: "source[0]", Line: 1, Msg: "set server or pool"}},
	}, {
		name: "invalid host names",
		text: "[[source]]\nserver = \"ntp.example.net:123\"\n[[source]]\npool = \"-bad.example\"\n[[source]]\nserver = \"[::1]\"\n",
		want: []Problem{
			{Key: "source[0].server", Line: 2, Msg: `"ntp.example.net:123" is not a host name or IP address (give the port as port = N, and IPv6 addresses without brackets)`},
			{Key: "source[1].pool", Line: 4, Msg: `"-bad.example" is not a host name or IP address`},
			{Key: "source[2].server", Line: 6, Msg: `"[::1]" is not a host name or IP address (give the port as port = N, and IPv6 addresses without brackets)`},
		},
	}, {
		name: "addresses are hosts",
		text: "[[source]]\nserver = \"192.0.2.1\"\n[[source]]\nserver = \"fe80::1%eth0\"\n[[source]]\nserver = \"ntp.example.net.\"\n",
	}, {
		name: "port",
		text: "[[source]]\nserver = \"a\"\nport = 0\n[[source]]\nserver = \"b\"\nport = 65536\n",
		want: []Problem{
			{Key: "source[0].port", Line: 3, Msg: "0 is out of range 1..65535"},
			{Key: "source[1].port", Line: 6, Msg: "65536 is out of range 1..65535"},
		},
	}, {
		name: "poll range",
		text: "[[source]]\nserver = \"a\"\nminpoll = -7\nmaxpoll = 18\n",
		want: []Problem{
			{Key: "source[0].minpoll", Line: 3, Msg: "-7 is out of range -6..17"},
			{Key: "source[0].maxpoll", Line: 4, Msg: "18 is out of range -6..17"},
		},
	}, {
		name: "minpoll above maxpoll, one of them a default",
		text: "[[source]]\nserver = \"a\"\nmaxpoll = 4\n",
		want: []Problem{{Key: "source[0].minpoll", Line: 1, Msg: "6 is greater than maxpoll 4"}},
	}, {
		name: "maxsources of a pool",
		text: "[[source]]\npool = \"a\"\nmaxsources = 0\n[[source]]\nserver = \"b\"\nmaxsources = 0\n",
		want: []Problem{{Key: "source[0].maxsources", Line: 3, Msg: "0: a pool needs at least 1"}},
	}, {
		name: "duplicate sources",
		text: "[[source]]\nserver = \"a.example\"\n[[source]]\npool = \"A.example.\"\n[[source]]\nserver = \"a.example\"\nport = 1123\n",
		want: []Problem{{Key: "source[1].pool", Line: 4, Msg: `"A.example." duplicates source[0]`}},
	}, {
		name: "step values",
		text: "[step]\nthreshold = -1\nlimit = -2\npanic = \"-1s\"\n",
		want: []Problem{
			{Key: "step.threshold", Line: 2, Msg: "-1s is negative"},
			{Key: "step.limit", Line: 3, Msg: "-2: want -1 (step at any time) or a count of at least 0"},
			{Key: "step.panic", Line: 4, Msg: "-1s is negative"},
		},
	}, {
		name: "panic not above threshold",
		text: "[step]\nthreshold = \"10s\"\npanic = 10\n",
		want: []Problem{{Key: "step.panic", Line: 3, Msg: "10s must be greater than step.threshold (10s), or 0 to disable the check"}},
	}, {
		name: "panic 0 disables the check",
		text: "[step]\nthreshold = \"2000s\"\npanic = 0\nlimit = -1\n",
	}, {
		name: "slew rate",
		text: "[clock]\nmax_slew_rate_ppm = 0\n",
		want: []Problem{{Key: "clock.max_slew_rate_ppm", Line: 2, Msg: "0 is out of range: want more than 0 and at most 100000"}},
	}, {
		name: "slew rate NaN",
		text: "[clock]\nmax_slew_rate_ppm = nan\n",
		want: []Problem{{Key: "clock.max_slew_rate_ppm", Line: 2, Msg: "NaN is out of range: want more than 0 and at most 100000"}},
	}, {
		name: "slew rate above the kernel's",
		text: "[clock]\nmax_slew_rate_ppm = 100000.5\n",
		want: []Problem{{Key: "clock.max_slew_rate_ppm", Line: 2, Msg: "100000.5 is out of range: want more than 0 and at most 100000"}},
	}, {
		name: "listen addresses",
		text: "[server]\nlisten = [\n  \"127.0.0.1\",\n  \"::1:123\",\n  \"localhost:123\",\n  \":ntp\",\n  \"[::1]:0\",\n]\n",
		want: []Problem{
			{Key: "server.listen[0]", Line: 2, Msg: `"127.0.0.1" is not host:port (write IPv6 addresses in brackets, like "[::1]:123")`},
			{Key: "server.listen[1]", Line: 2, Msg: `"::1:123" is not host:port (write IPv6 addresses in brackets, like "[::1]:123")`},
			{Key: "server.listen[2]", Line: 2, Msg: `"localhost:123": host "localhost" must be an IP address, or empty for every address`},
			{Key: "server.listen[3]", Line: 2, Msg: `":ntp": port "ntp" is not a number in 0..65535`},
		},
	}, {
		name: "enabled server needs an address",
		text: "[server]\nenabled = true\nlisten = []\n",
		want: []Problem{{Key: "server.listen", Line: 3, Msg: "the server is enabled but has no address to listen on"}},
	}, {
		name: "allow and deny",
		text: "[server]\nallow = [\"192.0.2.0/33\", \"192.0.2.1\", \"2001:db8::/32\", \"host.example\"]\ndeny = [\"10.0.0.0/8\", \"fe80::1%eth0\"]\n",
		want: []Problem{
			{Key: "server.allow[0]", Line: 2, Msg: `"192.0.2.0/33" is not a CIDR ("192.0.2.0/24", "2001:db8::/32") or an IP address`},
			{Key: "server.allow[3]", Line: 2, Msg: `"host.example" is not a CIDR ("192.0.2.0/24", "2001:db8::/32") or an IP address`},
			{Key: "server.deny[1]", Line: 3, Msg: `"fe80::1%eth0" is not a CIDR ("192.0.2.0/24", "2001:db8::/32") or an IP address`},
		},
	}, {
		name: "local stratum",
		text: "[server]\nlocal_stratum = 16\n",
		want: []Problem{{Key: "server.local_stratum", Line: 2, Msg: "16 is out of range 0..15"}},
	}, {
		name: "rate limit",
		text: "[server.ratelimit]\ninterval = 0\nburst = 0\ntable_size = 15\n",
		want: []Problem{
			{Key: "server.ratelimit.interval", Line: 2, Msg: "0s: want more than 0"},
			{Key: "server.ratelimit.burst", Line: 3, Msg: "0: want at least 1"},
			{Key: "server.ratelimit.table_size", Line: 4, Msg: "15 is out of range 16..16777216"},
		},
	}, {
		name: "rate limit table too big",
		text: "server.ratelimit.table_size = 16777217\n",
		want: []Problem{{Key: "server.ratelimit.table_size", Line: 1, Msg: "16777217 is out of range 16..16777216"}},
	}, {
		name: "hooks",
		text: `[hooks]
pre_step = [[], ["renew-lease"], ["/sbin/ok", "arg"]]
post_step = [[""]]
dhcp_renew = "dhcp"
timeout = 0
on_failure = "later"
post_step_on_failure = "auto"
external_step_on_failure = ""
`,
		want: []Problem{
			{Key: "hooks.pre_step[0]", Line: 2, Msg: "empty command"},
			{Key: "hooks.pre_step[1]", Line: 2, Msg: `program "renew-lease" must be an absolute path (hooks run without a shell or $PATH)`},
			{Key: "hooks.post_step[0]", Line: 3, Msg: "empty command"},
			{Key: "hooks.dhcp_renew", Line: 4, Msg: `"dhcp": want one of "auto", "off", "dhclient", "dhcpcd", "udhcpc", "networkd" or "networkmanager"`},
			{Key: "hooks.timeout", Line: 5, Msg: "0s: want more than 0"},
			{Key: "hooks.on_failure", Line: 6, Msg: `"later": want one of "auto", "proceed", "abort", "hold", "step" or "slew"`},
			{Key: "hooks.post_step_on_failure", Line: 7, Msg: `"auto": want one of "proceed" or "abort"`},
			{Key: "hooks.external_step_on_failure", Line: 8, Msg: `"": want one of "proceed" or "abort"`},
		},
	}, {
		name: "metrics listen",
		text: "[metrics]\nlisten = \"9123\"\n",
		want: []Problem{{Key: "metrics.listen", Line: 2, Msg: `"9123" is not host:port (write IPv6 addresses in brackets, like "[::1]:123")`}},
	}, {
		name: "relative paths",
		text: "driftfile = \"drift\"\ncontrol.socket = \"ctl.sock\"\naudit.journal = \"audit.jsonl\"\n",
		want: []Problem{
			{Key: "driftfile", Line: 1, Msg: `"drift" must be an absolute path`},
			{Key: "control.socket", Line: 2, Msg: `"ctl.sock" must be an absolute path`},
			{Key: "audit.journal", Line: 3, Msg: `"audit.jsonl" must be an absolute path`},
		},
	}, {
		name: "control group",
		text: "[control]\ngroup = \"ntp users\"\n",
		want: []Problem{{Key: "control.group", Line: 2, Msg: `"ntp users" is not a group name or number`}},
	}, {
		name: "log",
		text: "[log]\nlevel = \"INFO\"\nformat = \"xml\"\n",
		want: []Problem{
			{Key: "log.level", Line: 2, Msg: `"INFO": want one of "debug", "info", "warn" or "error"`},
			{Key: "log.format", Line: 3, Msg: `"xml": want one of "text" or "json"`},
		},
	}, {
		name: "run user",
		text: "[run]\nuser = \"ntptool\"\n",
	}, {
		name: "run uid",
		text: "[run]\nuser = \"123\"\n",
	}, {
		name: "run user not a name",
		text: "[run]\nuser = \"-root\"\n",
		want: []Problem{{Key: "run.user", Line: 2, Msg: `"-root" is not a user name (letters, digits, '_', '-' and '.', not starting with '-', at most 32) or a numeric uid`}},
	}, {
		name: "run user with a space",
		text: "[run]\nuser = \"nt p\"\n",
		want: []Problem{{Key: "run.user", Line: 2, Msg: `"nt p" is not a user name (letters, digits, '_', '-' and '.', not starting with '-', at most 32) or a numeric uid`}},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.text), "test.toml")
			if tt.want == nil {
				if err != nil {
					t.Fatalf("want no problem, got:\n%v", err)
				}
				return
			}
			if diff := cmp.Diff(tt.want, problems(t, tt.text)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestValidateInCode(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default() is invalid: %v", err)
	}
	c.Sources = []Source{{Server: "a.example"}}
	c.Log.Format = ""
	err := c.Validate()
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("got %v, want a *ValidationError", err)
	}
	wantProblems := []Problem{
		{Key: "source[0].port", Msg: "0 is out of range 1..65535"},
		{Key: "log.format", Msg: `"": want one of "text" or "json"`},
	}
	if diff := cmp.Diff(wantProblems, verr.Problems); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if got, want := err.Error(), "source[0].port: 0 is out of range 1..65535\nlog.format: \"\": want one of \"text\" or \"json\""; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestValidationErrorFormat(t *testing.T) {
	err := &ValidationError{File: "f.toml", Problems: []Problem{
		{Line: 3, Col: 7, Msg: "syntax"},
		{Key: "step.limit", Line: 4, Msg: "bad"},
		{Key: "source[0]", Msg: "no line"},
	}}
	want := "f.toml:3:7: syntax\nf.toml:4: step.limit: bad\nf.toml: source[0]: no line"
	if got := err.Error(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestParsePrefix(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"192.0.2.0/24", "192.0.2.0/24"},
		{"192.0.2.7/24", "192.0.2.0/24"},
		{"192.0.2.7", "192.0.2.7/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"::/0", "::/0"},
		{"192.0.2", ""},
		{"fe80::1%eth0", ""},
		{"", ""},
	} {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParsePrefix(tt.in)
			got := ""
			if err == nil {
				got = p.String()
			}
			if got != tt.want {
				t.Errorf("got %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}

// TestOnFailureWords: every word hooks.on_failure takes is valid, and is
// kept as written (stephook resolves the aliases).
func TestOnFailureWords(t *testing.T) {
	for _, word := range []string{"auto", "proceed", "abort", "hold", "step", "slew"} {
		t.Run(word, func(t *testing.T) {
			c, err := Parse([]byte("[hooks]\non_failure = \""+word+"\"\n"), "t.toml")
			if err != nil {
				t.Fatal(err)
			}
			if c.Hooks.OnFailure != word {
				t.Errorf("on_failure %q, want %q", c.Hooks.OnFailure, word)
			}
		})
	}
	if _, err := Parse([]byte("[hooks]\npost_step_on_failure = \"hold\"\n"), "t.toml"); err == nil {
		t.Error("post_step_on_failure = hold accepted: the step is made, there is nothing to hold")
	}
}
