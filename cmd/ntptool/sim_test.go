package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const shortScenario = `name = "short"
seeds = [1, 3]
duration = 3000
[clock]
offset = 0.1
freq = 1e-4
wander = 1e-9
[[servers]]
offset = 0
[client]
config = '''
[[source]]
server = "s1"
iburst = true
'''
`

// The --json keys are a contract: scripts read them.
func TestSimJSON(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "short.toml")
	if err := os.WriteFile(path, []byte(shortScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	trace := filepath.Join(dir, "trace")
	code, out, errOut := runCmd(t, "sim", path, "--json", "--seeds", "1-2", "--trace", trace)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		Name   string                       `json:"name"`
		Seeds  []map[string]json.RawMessage `json:"seeds"`
		Median map[string]json.RawMessage   `json:"median"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	want := []string{"clock_adjustments_per_poll", "first_below_1ms_s", "max_abs_offset_s", "max_abs_offset_settled_s", "max_abs_offset_window_s",
		"mean_poll_run_s", "mean_poll_s", "rms_freq_error_ppb", "rms_offset_s", "rms_sigma_s", "settle_1ms_s", "within_3_sigma_fraction"}
	var keys []string
	for k := range got.Median {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("median keys (-want +got):\n%s", diff)
	}
	if got.Name != "short" || len(got.Seeds) != 2 || string(got.Seeds[1]["seed"]) != "2" {
		t.Errorf("name %q, %d seeds (%s), want short, seeds 1-2", got.Name, len(got.Seeds), out)
	}
	// iburst: the clock is within 1 ms within seconds and stays there.
	var settle float64
	if err := json.Unmarshal(got.Median["settle_1ms_s"], &settle); err != nil || settle > 10 {
		t.Errorf("median settle %s, want <= 10 s", got.Median["settle_1ms_s"])
	}
	data, err := os.ReadFile(trace)
	if err != nil || strings.Count(string(data), "\n") != 3001 {
		t.Errorf("trace: %v, %d lines, want 3001 (one per second)", err, strings.Count(string(data), "\n"))
	}
}

func TestSimUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"no scenario", []string{"sim"}, exitUsage},
		{"bad seeds", []string{"sim", "x.toml", "--seeds", "5-1"}, exitFailure}, // the file is read first
		{"missing file", []string{"sim", "/nonexistent.toml"}, exitFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, _ := runCmd(t, tc.args...); code != tc.want {
				t.Errorf("exit %d, want %d", code, tc.want)
			}
		})
	}
}

// FuzzParseSeeds: never panics; accepted ranges are sane and bounded.
func FuzzParseSeeds(f *testing.F) {
	for _, s := range []string{"1", "1-20", "5-1", "-1", "1-", "x", "0-9999", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		first, last, err := parseSeeds(s)
		if err == nil && (first < 0 || last < first || last-first >= 10000) {
			t.Fatalf("parseSeeds(%q) = %d, %d", s, first, last)
		}
	})
}
