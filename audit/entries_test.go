package audit

import (
	"strings"
	"testing"
	"time"
)

// TestConstructors writes one entry of each constructor, reads it back and
// checks the readable form.
func TestConstructors(t *testing.T) {
	src := []string{"a.example (192.0.2.1:123)"}
	hooks := []HookRun{{Name: "dhclient", Phase: "post_step", Result: "failed", Error: "exit status 1", DurationSeconds: 0.5}}
	for _, tt := range []struct {
		name string
		e    Entry
		want string
	}{
		{"step", StepEntry(t0, -1500*time.Millisecond, "offset 1.5 s", src, hooks, true),
			"step            -1.500000 s (2026-11-25T10:00:00.000000Z → 2026-11-25T09:59:58.500000Z) applied; reason: offset 1.5 s; sources: a.example (192.0.2.1:123); hooks: dhclient failed 0.500 s (exit status 1)"},
		{"slew dry run", SlewEntry(t0, 0, 250*time.Microsecond, "update", src, false),
			"slew            0 s → 0.00025 s not applied (no clock control)"},
		{"slew with its frequency", func() Entry {
			e := SlewEntry(t0, -10*time.Microsecond, 250*time.Microsecond, "update", src, true)
			e.Frequency = &FrequencyChange{Old: -12.5, New: -12.25}
			return e
		}(), "slew            -0.00001 s → 0.00025 s, frequency -12.500 → -12.250 ppm applied"},
		{"frequency", FrequencyEntry(t0, 12.5, 12.75, "update", nil, true), "frequency       12.5 ppm → 12.75 ppm applied; reason: update"},
		{"status", StatusEntry(t0, true, 1500*time.Microsecond, "", true), "status          unsynchronised → synchronised applied; reason: maximum error 1.5ms"},
		{"leap", LeapEntry(t0, 0, 1, "2 of 3 sources", src, true), "leap            none → insert applied"},
		{"external", ExternalEntry(t0, t0.Add(30*time.Second), "clock set by another process", nil),
			"external-change +30.000000 s (2026-11-25T10:00:00.000000Z → 2026-11-25T10:00:30.000000Z) applied"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j, path := newJournal(t)
			if err := j.Append(tt.e); err != nil {
				t.Fatal(err)
			}
			var got string
			if err := Scan([]string{path}, func(r Record) error {
				if r.Parsed.Entry != nil {
					got = Format(r.Parsed.Entry)
				}
				return r.Err
			}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("got  %s\nwant …%s…", got, tt.want)
			}
		})
	}
}
