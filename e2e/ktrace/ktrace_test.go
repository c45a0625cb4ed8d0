package ktrace

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A trace as Debian's 6.1 kernel prints it (format checked in the guest).
const trace = `# tracer: nop
#
# entries-in-buffer/entries-written: 7/7   #P:1
#
#                                _-----=> irqs-off/BH-disabled
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
            init-1       [000] d....    10.000100: settime: (do_settimeofday64+0x0/0x180)
            init-1       [000] d....    10.000200: adjtimex: (do_adjtimex+0x0/0x2c0) modes=0x2
         chronyd-345     [000] d....    20.500000: udpsend: (udp_sendmsg+0x0/0xa70)
         chronyd-345     [000] d....    20.600000: adjtimex: (do_adjtimex+0x0/0x2c0) modes=0x0
         chronyd-345     [000] d....    20.600100: adjtimex: (do_adjtimex+0x0/0x2c0) modes=0x4003
 kworker/u2:1-my-12      [000] d....    20.700000: udpsend: (udp_sendmsg+0x0/0xa70)
CPU:0 [LOST 3 EVENTS]
         chronyd-345     [000] d....    21.000000: adjtimex: (do_adjtimex+0x0/0x2c0) modes=0x2101 freq=0 sec=-31 usec=935587588
         chronyd-345     [000] d....    21.000000: adjtimex: (do_adjtimex+0x0/0x2c0) modes=zz
         chronyd-345     [000] d....    20.000000: adjtimex: (do_adjtimex+0x0/0x2c0) modes=0x2100 freq=0 sec=0 usec=0
`

func TestParseAndCount(t *testing.T) {
	events, lost, err := Parse(strings.NewReader(trace))
	if err != nil {
		t.Fatal(err)
	}
	if lost != 3 {
		t.Errorf("lost = %d, want 3", lost)
	}
	if len(events) != 8 {
		t.Fatalf("%d events, want 7: %+v", len(events), events)
	}
	if got := events[5].Comm; got != "kworker/u2:1-my" {
		t.Errorf("comm with a dash = %q", got)
	}
	if got, want := events[6].StepNS, int64(-31e9+935587588); got != want || !events[6].IsStep() {
		t.Errorf("ADJ_SETOFFSET|ADJ_NANO step = %d ns (step %v), want %d", got, events[6].IsStep(), want)
	}
	tests := []struct {
		name     string
		comm     string
		from, to float64
		want     Counts
	}{
		{"init", "init", 0, 100, Counts{AdjtimexWrites: 1, Steps: 1, FrequencySets: 1}},
		{"chronyd, all (its zero ADJ_SETOFFSET probe is no step)", "chronyd", 0, 100, Counts{AdjtimexWrites: 3, AdjtimexReads: 1, Steps: 1, FrequencySets: 1, UDPSends: 1}},
		{"chronyd, window", "chronyd", 20.55, 21, Counts{AdjtimexWrites: 1, AdjtimexReads: 1, FrequencySets: 1}},
		{"nobody", "ntptoold", 0, 100, Counts{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Count(events, tc.comm, tc.from, tc.to)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(trace)
	f.Add("x-1 [0] 1.5: adjtimex: modes=0x99999999999")
	f.Fuzz(func(t *testing.T, s string) {
		events, lost, _ := Parse(strings.NewReader(s))
		if lost < 0 {
			t.Fatalf("negative lost %d", lost)
		}
		for _, e := range events {
			if e.Name == "" {
				t.Fatalf("event without a name: %+v", e)
			}
		}
	})
}
