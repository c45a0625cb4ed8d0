package clock_test

import (
	"math"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/clock"
)

// TestStartupOffNominalTick is the start-up sequence the daemon runs
// under clock control (daemon/run.go openClock): read the kernel (modes
// 0), clock.PlanStartup, the Restore calls through the same kernel, then
// clock.New, then the engine applies the drift file's frequency. A tick
// left off nominal by a crash mid-slew must not become part of the
// frequency: the Clock starts from the drift file's (or, without one, the
// frequency field alone), and the kernel ends with the nominal tick,
// unless the frequency itself is beyond ±500 ppm.
func TestStartupOffNominalTick(t *testing.T) {
	tests := []struct {
		name      string
		tick      int64
		freqPPM   float64 // the kernel's frequency field
		status    int32
		drift     float64
		haveDrift bool
		// wantFreq is the Clock's frequency after New (and after the
		// engine's Apply of the drift file), wantTick and wantFreqField
		// the kernel's fields at the end.
		wantFreq      float64
		wantTick      int64
		wantFreqField int64
		wantNote      string
	}{
		{name: "crash mid-slew (+5 %), drift file: its frequency, nominal tick",
			tick: 10500, freqPPM: 7, status: unix.STA_UNSYNC, drift: 7.25, haveDrift: true,
			wantFreq: 7.25, wantTick: 10000, wantFreqField: scaled(7.25), wantNote: "tick 10500 µs is off nominal"},
		{name: "crash mid-slew (-8.33 %), drift file",
			tick: 9167, freqPPM: -30, status: unix.STA_UNSYNC, drift: -2.5, haveDrift: true,
			wantFreq: -2.5, wantTick: 10000, wantFreqField: scaled(-2.5), wantNote: "tick 9167 µs"},
		{name: "crash mid-slew, no drift file: the frequency field alone",
			tick: 9700, freqPPM: -20, status: unix.STA_UNSYNC,
			wantFreq: -20, wantTick: 10000, wantFreqField: scaled(-20), wantNote: "from the kernel's frequency field"},
		{name: "crash mid-slew left synchronised: also marked unsynchronised",
			tick: 10300, freqPPM: 1.5, status: 0, drift: 1.5, haveDrift: true,
			wantFreq: 1.5, wantTick: 10000, wantFreqField: scaled(1.5), wantNote: "marking it unsynchronised"},
		{name: "a drift file beyond 500 ppm goes back into the tick",
			tick: 10400, freqPPM: 3, status: unix.STA_UNSYNC, drift: -712.5, haveDrift: true,
			wantFreq: -712.5, wantTick: 9993, wantFreqField: scaled(-12.5), wantNote: "from the drift file"},
		{name: "a bad drift value (beyond the range) is ignored: the frequency field",
			tick: 10200, freqPPM: 4, status: unix.STA_UNSYNC, drift: 60000, haveDrift: true,
			wantFreq: 4, wantTick: 10000, wantFreqField: scaled(4), wantNote: "ignored"},
		{name: "a nominal tick: nothing restored, the engine applies the drift file",
			tick: 10000, freqPPM: 9, status: unix.STA_UNSYNC, drift: 12.5, haveDrift: true,
			wantFreq: 12.5, wantTick: 10000, wantFreqField: scaled(12.5)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newRecordingKernel()
			k.state.Tick, k.state.Freq, k.state.Status = tc.tick, scaled(tc.freqPPM), tc.status
			var tx unix.Timex
			if _, err := k.Adjtimex(&tx); err != nil {
				t.Fatal(err)
			}
			plan := clock.PlanStartup(tx, tc.drift, tc.haveDrift)
			if off := tc.tick != 10000; plan.TickOffNominal != off {
				t.Errorf("TickOffNominal %v, want %v", plan.TickOffNominal, off)
			}
			notes := strings.Join(plan.Notes, "\n")
			if !strings.Contains(notes, tc.wantNote) || (tc.wantNote == "") != (notes == "") {
				t.Errorf("notes %q, want %q", notes, tc.wantNote)
			}
			for _, r := range plan.Restore {
				if _, err := k.Adjtimex(&r); err != nil {
					t.Fatalf("restore %+v: %v", r, err)
				}
			}
			if k.state.Tick != 10000 && tc.wantTick == 10000 {
				t.Errorf("tick %d after the restore, want nominal", k.state.Tick)
			}
			c, err := clock.New(k)
			if err != nil {
				t.Fatal(err)
			}
			// With something restored New starts from the plan's frequency;
			// with nothing to restore, from the kernel's (the engine then
			// applies the drift file).
			start := plan.FreqPPM
			if len(plan.Restore) == 0 {
				start = tc.freqPPM
			}
			if got := c.FrequencyPPM(); math.Abs(got-start) > 1.0/65536 {
				t.Errorf("clock.New starts from %v ppm, want %v ppm", got, start)
			}
			if math.Abs(c.FrequencyPPM()-tc.freqPPM-float64(tc.tick-10000)*100) < 1e-9 && tc.tick != 10000 {
				t.Errorf("clock.New took the tick as a frequency: %v ppm", c.FrequencyPPM())
			}
			// The engine applies the drift file's frequency at start
			// (daemon.New), if the plan kept it.
			if tc.haveDrift && math.Abs(tc.drift) <= clock.MaxCorrectionPPM {
				if _, err := c.Apply(clock.Update{FreqPPM: tc.drift}, 0); err != nil {
					t.Fatal(err)
				}
			}
			if got := c.FrequencyPPM(); got != tc.wantFreq {
				t.Errorf("frequency %v ppm, want %v ppm", got, tc.wantFreq)
			}
			if k.state.Tick != tc.wantTick || k.state.Freq != tc.wantFreqField {
				t.Errorf("kernel tick %d, freq %d; want %d, %d", k.state.Tick, k.state.Freq, tc.wantTick, tc.wantFreqField)
			}
			if k.state.Status&unix.STA_UNSYNC == 0 {
				t.Error("the kernel says synchronised before this daemon synchronised")
			}
		})
	}
}

// TestNewTakesTheTick shows why PlanStartup must come first: clock.New on
// its own reads tick and frequency together as the correction in force.
func TestNewTakesTheTick(t *testing.T) {
	k := newRecordingKernel()
	k.state.Tick, k.state.Freq = 10500, scaled(7)
	c, err := clock.New(k)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.FrequencyPPM(); got != 50007 {
		t.Errorf("clock.New read %v ppm, want 50007 (tick +5 %% and frequency +7)", got)
	}
	if len(k.changes()) != 0 {
		t.Errorf("clock.New changed the kernel: %v", k.changes())
	}
}
