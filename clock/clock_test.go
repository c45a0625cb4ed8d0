package clock_test

import (
	"math"
	"testing"
	"time"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/internal/sim"
)

// twin is a pair of identical simulated hosts: one gets the corrections
// under test, the other only their frequency, so the difference of their
// offsets is exactly the phase the corrections added.
type twin struct {
	a, b   *sim.Sim
	ca, cb *clock.Clock
}

func newTwin(t *testing.T) *twin {
	t.Helper()
	cfg := sim.Config{Seed: 1, Clock: sim.ClockConfig{F0: 1e-4, Wander: 1e-9}}
	var tw twin
	var err error
	if tw.a, err = sim.New(cfg); err != nil {
		t.Fatal(err)
	}
	if tw.b, err = sim.New(cfg); err != nil {
		t.Fatal(err)
	}
	if tw.ca, err = clock.New(tw.a.Client()); err != nil {
		t.Fatal(err)
	}
	if tw.cb, err = clock.New(tw.b.Client()); err != nil {
		t.Fatal(err)
	}
	return tw.run(10 * time.Second)
}

func (tw *twin) run(d time.Duration) *twin {
	tw.a.RunUntil(tw.a.Now() + d)
	tw.b.RunUntil(tw.b.Now() + d)
	return tw
}

func (tw *twin) mono() time.Duration  { _, m := tw.a.Client().Now(); return m }
func (tw *twin) monoB() time.Duration { _, m := tw.b.Client().Now(); return m }

// gained is the phase the corrections under test added so far.
func (tw *twin) gained() time.Duration {
	return clock.Seconds(tw.a.Client().Offset() - tw.b.Client().Offset())
}

func TestSlewAndStepAccounting(t *testing.T) {
	const freq = -100 // cancels the oscillator's +100 ppm
	tests := []struct {
		name    string
		slew    time.Duration
		ratePPM float64
		minDur  time.Duration
		late    time.Duration // EndSlew this long after the planned end
		step    time.Duration // a step in the middle of the slew
		want    time.Duration
	}{
		{name: "+10 ms at 500 ppm", slew: 10 * time.Millisecond, ratePPM: 500, minDur: time.Second, want: 10 * time.Millisecond},
		{name: "-10 ms at 500 ppm", slew: -10 * time.Millisecond, ratePPM: 500, minDur: time.Second, want: -10 * time.Millisecond},
		{name: "+0.1 s through the tick", slew: 100 * time.Millisecond, ratePPM: 83333, minDur: time.Second, want: 100 * time.Millisecond},
		{name: "-0.1 s through the tick", slew: -100 * time.Millisecond, ratePPM: 100000, minDur: time.Second, want: -100 * time.Millisecond},
		{name: "20 µs over the minimum duration", slew: 20 * time.Microsecond, ratePPM: 83333, minDur: time.Second, want: 20 * time.Microsecond},
		{name: "a late end counts what it added", slew: 10 * time.Millisecond, ratePPM: 1000, minDur: time.Second, late: 5 * time.Second,
			want: 10*time.Millisecond + 5*time.Millisecond},
		{name: "a step in the middle", slew: 10 * time.Millisecond, ratePPM: 1000, minDur: time.Second, step: 1500 * time.Millisecond,
			want: 1500*time.Millisecond + 5*time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tw := newTwin(t)
			now := tw.mono()
			end, err := tw.ca.Apply(clock.Update{FreqPPM: freq, Slew: tc.slew, MaxRatePPM: tc.ratePPM, MinDuration: tc.minDur}, now)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tw.cb.Apply(clock.Update{FreqPPM: freq}, tw.monoB()); err != nil {
				t.Fatal(err)
			}
			if d := end - now; d < tc.minDur {
				t.Errorf("slew lasts %v, less than the minimum %v", d, tc.minDur)
			}
			// The owner's timers run on the monotonic clock, which the slew
			// speeds up or slows down too.
			var errs []error
			if tc.step != 0 {
				tw.a.AtMonotonic(now+(end-now)/2, func() { errs = append(errs, tw.ca.Step(tc.step, tw.mono())) })
			} else {
				tw.a.AtMonotonic(end+tc.late, func() { errs = append(errs, tw.ca.EndSlew(tw.mono())) })
			}
			tw.run(20 * time.Second)
			if len(errs) != 1 || errs[0] != nil {
				t.Fatalf("scheduled correction: %v", errs)
			}
			got, applied := tw.gained(), tw.ca.Applied(tw.mono())
			if (got-tc.want).Abs() > 2*time.Microsecond && tc.late == 0 && tc.step == 0 {
				t.Errorf("the clock gained %v, want %v", got, tc.want)
			}
			// Whatever happened, Applied must say what the clock gained.
			if (applied - got).Abs() > time.Microsecond {
				t.Errorf("Applied = %v, but the clock gained %v", applied, got)
			}
			if a := tw.a.Client().Adjustments(); a > 3 {
				t.Errorf("%d adjtimex calls, want at most 3", a)
			}
		})
	}
}

func TestSeconds(t *testing.T) {
	tests := []struct {
		in   float64
		want time.Duration
	}{
		{1.5, 1500 * time.Millisecond},
		{-2e-9, -2},
		{math.NaN(), 0},
		{1e300, math.MaxInt64},
		{math.Inf(-1), math.MinInt64},
	}
	for _, tc := range tests {
		if got := clock.Seconds(tc.in); got != tc.want {
			t.Errorf("Seconds(%g) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestApplyRejects(t *testing.T) {
	tw := newTwin(t)
	for _, ppm := range []float64{math.NaN(), 60000, -1e9} {
		if _, err := tw.ca.Apply(clock.Update{FreqPPM: ppm}, tw.mono()); err == nil {
			t.Errorf("Apply(frequency %g ppm) succeeded", ppm)
		}
	}
	if a := tw.a.Client().Adjustments(); a != 0 {
		t.Errorf("a rejected update made %d adjtimex calls", a)
	}
}
