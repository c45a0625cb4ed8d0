package sim

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseScenarioErrors(t *testing.T) {
	base := "[[servers]]\noffset = 0\n[client]\nconfig = '''\n[[source]]\nserver = \"s1\"\n'''\n"
	tests := []struct{ name, text, want string }{
		{"unknown key", "colour = 1\n" + base, "unknown keys: colour"},
		{"seeds reversed", "seeds = [3, 1]\n" + base, "seeds must be"},
		{"too many seeds", "seeds = [0, 100000]\n" + base, "at most 10000 seeds"},
		{"no servers", "[client]\nconfig = ''", "no [[servers]]"},
		{"server s2 missing", "[[servers]]\noffset = 0\n[client]\nconfig = '''\n[[source]]\nserver = \"s2\"\n'''\n", "must name one of s1..s1"},
		{"bad drift file", "[clock]\ndrift = \"x\"\n" + base, "clock.drift"},
		{"bad client config", "[[servers]]\noffset = 0\n[client]\nconfig = '''\n[[source]]\nserver = \"s1\"\nminpoll = 99\n'''\n", "minpoll"},
		{"frequency out of range", "[clock]\nfreq = 0.5\n" + base, "invalid simulation config"},
		{"duration", "duration = -1\n" + base, "duration"},
		{"NaN duration", "duration = nan\n" + base, "duration = NaN"},
		{"huge offset", "[clock]\noffset = 1e12\n" + base, "clock.offset"},
		{"NaN server offset", "[[servers]]\noffset = nan\n" + base, "servers[0].offset"},
		{"huge base delay", "[network]\nbase_delay = 1e300\n" + base, "network.base_delay"},
		{"server jitter", "[[servers]]\noffset = 0\njitter = -1\n" + base, "servers[0].jitter"},
		{"event server 0", "[[events]]\nat = 1\nserver = 0\ndown = true\n" + base, "events[0].server = 0"},
		{"event server beyond", "[[events]]\nat = 1\nserver = 2\ndown = true\n" + base, "want one of 1..1"},
		{"event without a kind", "[[events]]\nat = 1\nserver = 1\n" + base, "exactly one of"},
		{"event with two kinds", "[[events]]\nat = 1\nserver = 1\ndown = true\noffset = 1\n" + base, "exactly one of"},
		{"event after the end", "duration = 10\n[[events]]\nat = 11\nserver = 1\nup = true\n" + base, "events[0].at"},
		{"hooks seconds", "[hooks]\nseconds = -1\n" + base, "hooks.seconds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseScenario([]byte(tc.text), "test")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// Once synchronised, the engine hands the kernel an honest status: every
// adjtimex caller sees TIME_OK, STA_UNSYNC is clear, and the estimated
// error is what the filter believes (tens of µs here), while the kernel's
// maximum error grows from the last update as Linux makes it.
func TestKernelStatusOnceSynchronised(t *testing.T) {
	sc, err := LoadScenario("../../bench/sim/A1.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []float64{30, 3000} {
		sc.Duration = d
		var tx unix.Timex
		var state int
		_, st, err := sc.run(1, nil, func(s *Sim) {
			var err error
			if state, err = s.Client().Adjtimex(&tx); err != nil {
				t.Fatal(err)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		// Synchronised from the first update on (t = 0): the offset is
		// removed then, and maxerror, growing 500 µs/s in the kernel, stays
		// above the drift of a frequency not yet learnt.
		if !st.Synced {
			t.Fatalf("at %v s the engine is not synchronised", d)
		}
		if state != unix.TIME_OK || tx.Status&unix.STA_UNSYNC != 0 {
			t.Errorf("at %v s adjtimex returns state %d, status %#x; want TIME_OK, STA_UNSYNC clear", d, state, tx.Status)
		}
		if tx.Esterror <= 0 || tx.Esterror > 200 {
			t.Errorf("esterror %d µs, want (0, 200]", tx.Esterror)
		}
		if tx.Maxerror < tx.Esterror || tx.Maxerror > 600_000 {
			t.Errorf("maxerror %d µs, want between esterror and 0.6 s (one long poll of growth)", tx.Maxerror)
		}
	}
}
