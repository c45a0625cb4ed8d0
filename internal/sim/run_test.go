package sim

import (
	"strings"
	"testing"
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
