package clock_test

import (
	"errors"
	"math"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/clock"
)

// recordingKernel is a fake Linux kernel clock: it records every
// adjtimex call as it was made (the Timex the Clock filled in), applies
// the modes to its own state with the kernel's checks (tick within
// 9000..11000 µs, ADJ_SETOFFSET's nanoseconds within [0, 1e9), the
// frequency clamped to ±500 ppm as MAXFREQ_SCALED does), and returns the
// state in tx as the kernel does. Nothing reaches the host's clock: its
// Now is a fixed instant plus a monotonic time the test moves.
type recordingKernel struct {
	calls []unix.Timex
	state unix.Timex
	steps time.Duration // sum of the ADJ_SETOFFSET steps
	mono  time.Duration
	// fail, when not nil, is returned by every call with modes (reads
	// succeed), and failReads by reads too.
	fail      error
	failReads error
}

func newRecordingKernel() *recordingKernel {
	return &recordingKernel{state: unix.Timex{Tick: 10000, Status: unix.STA_UNSYNC, Maxerror: 16_000_000, Esterror: 16_000_000}, mono: time.Hour}
}

func (k *recordingKernel) Now() (time.Time, time.Duration) {
	return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).Add(k.mono + k.steps), k.mono
}

func (k *recordingKernel) Adjtimex(tx *unix.Timex) (int, error) {
	k.calls = append(k.calls, *tx)
	if tx.Modes == 0 && k.failReads != nil {
		return 0, k.failReads
	}
	if tx.Modes != 0 && k.fail != nil {
		return 0, k.fail
	}
	m := tx.Modes
	if m&unix.ADJ_TICK != 0 && (tx.Tick < 9000 || tx.Tick > 11000) {
		return 0, syscall.EINVAL
	}
	if m&unix.ADJ_SETOFFSET != 0 {
		limit := int64(1e6)
		if m&unix.ADJ_NANO != 0 {
			limit = 1e9
		}
		if tx.Time.Usec < 0 || tx.Time.Usec >= limit {
			return 0, syscall.EINVAL
		}
		step := time.Duration(tx.Time.Sec) * time.Second
		if m&unix.ADJ_NANO != 0 {
			step += time.Duration(tx.Time.Usec)
		} else {
			step += time.Duration(tx.Time.Usec) * time.Microsecond
		}
		k.steps += step
	}
	if m&unix.ADJ_FREQUENCY != 0 {
		k.state.Freq = min(max(tx.Freq, -500<<16), 500<<16)
	}
	if m&unix.ADJ_TICK != 0 {
		k.state.Tick = tx.Tick
	}
	if m&unix.ADJ_STATUS != 0 {
		k.state.Status = tx.Status
	}
	if m&unix.ADJ_MAXERROR != 0 {
		k.state.Maxerror = tx.Maxerror
	}
	if m&unix.ADJ_ESTERROR != 0 {
		k.state.Esterror = tx.Esterror
	}
	modes := tx.Modes
	*tx = k.state
	tx.Modes = modes
	if k.state.Status&unix.STA_UNSYNC != 0 {
		return unix.TIME_ERROR, nil
	}
	return unix.TIME_OK, nil
}

// changes are the recorded calls with modes (the reads left out).
func (k *recordingKernel) changes() []unix.Timex {
	var out []unix.Timex
	for _, c := range k.calls {
		if c.Modes != 0 {
			out = append(out, c)
		}
	}
	return out
}

// Modes the Clock combines.
const (
	rateModes   = unix.ADJ_FREQUENCY | unix.ADJ_TICK
	statusModes = unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR
	stepModes   = unix.ADJ_SETOFFSET | unix.ADJ_NANO
)

// scaled is ppm in adjtimex's frequency unit (2⁻¹⁶ ppm), rounded.
func scaled(ppm float64) int64 { return int64(math.Round(ppm * 65536)) }

// rate is the Timex of a rate-only call.
func rate(tick int64, freq int64) unix.Timex {
	return unix.Timex{Modes: rateModes, Tick: tick, Freq: freq}
}

// slewSeconds is how long a slew of delta at rate r (signed, s/s) over a
// base rate 1+freq takes, the kernel's monotonic clock running at the
// corrected rate: d·r/(base+r) = delta.
func slewSeconds(delta time.Duration, freqPPM, r float64) float64 {
	return delta.Seconds() * (1 + freqPPM/1e6 + r) / r
}

// TestApplyTimex is the translation of one clock update into adjtimex
// fields: the frequency (2⁻¹⁶ ppm, the tick taking whole 100 ppm steps
// beyond ±500 ppm), slews as a temporary rate through the tick and the
// frequency, their duration and signs, and the rejected values.
func TestApplyTimex(t *testing.T) {
	const startFreqPPM = 3 // the kernel's frequency before the update
	tests := []struct {
		name     string
		u        clock.Update
		want     []unix.Timex
		wantFreq float64 // FrequencyPPM after
		// wantSlewS is the slew's planned duration (0: no slew), and
		// wantRatePPM the slew's extra rate as the kernel realises it.
		wantSlewS   float64
		wantRatePPM float64
		wantErr     bool
	}{
		{name: "frequency +12.5 ppm", u: clock.Update{FreqPPM: 12.5},
			want: []unix.Timex{rate(10000, 819200)}, wantFreq: 12.5},
		{name: "frequency -0.25 ppm keeps its sign", u: clock.Update{FreqPPM: -0.25},
			want: []unix.Timex{rate(10000, -16384)}, wantFreq: -0.25},
		{name: "frequency is rounded to 2⁻¹⁶ ppm", u: clock.Update{FreqPPM: 1e-5},
			want: []unix.Timex{rate(10000, 1)}, wantFreq: 1.0 / 65536},
		{name: "zero", u: clock.Update{},
			want: []unix.Timex{rate(10000, 0)}, wantFreq: 0},
		{name: "+500 ppm stays in the frequency field", u: clock.Update{FreqPPM: 500},
			want: []unix.Timex{rate(10000, 500<<16)}, wantFreq: 500},
		{name: "-500 ppm stays in the frequency field", u: clock.Update{FreqPPM: -500},
			want: []unix.Timex{rate(10000, -500<<16)}, wantFreq: -500},
		{name: "+500.01 ppm: 500 ppm in the tick, the rest in the frequency", u: clock.Update{FreqPPM: 500.01},
			want: []unix.Timex{rate(10005, 655)}, wantFreq: 500 + 655.0/65536},
		{name: "-1234.5 ppm: -1200 ppm in the tick", u: clock.Update{FreqPPM: -1234.5},
			want: []unix.Timex{rate(9988, -2260992)}, wantFreq: -1234.5},
		{name: "+549.99 ppm rounds the tick down", u: clock.Update{FreqPPM: 549.99},
			want: []unix.Timex{rate(10005, scaled(49.99))}, wantFreq: 500 + float64(scaled(49.99))/65536},
		{name: "+550 ppm rounds the tick away from zero", u: clock.Update{FreqPPM: 550},
			want: []unix.Timex{rate(10006, -50<<16)}, wantFreq: 550},
		{name: "-550 ppm rounds the tick away from zero", u: clock.Update{FreqPPM: -550},
			want: []unix.Timex{rate(9994, 50<<16)}, wantFreq: -550},
		{name: "the largest correction +50000 ppm: tick +5 %", u: clock.Update{FreqPPM: 50000},
			want: []unix.Timex{rate(10500, 0)}, wantFreq: 50000},
		{name: "the largest correction -50000 ppm: tick -5 %", u: clock.Update{FreqPPM: -50000},
			want: []unix.Timex{rate(9500, 0)}, wantFreq: -50000},
		{name: "beyond +50000 ppm is refused before any call", u: clock.Update{FreqPPM: 50000.001}, wantErr: true, wantFreq: startFreqPPM},
		{name: "beyond -50000 ppm is refused", u: clock.Update{FreqPPM: -60000}, wantErr: true, wantFreq: startFreqPPM},
		{name: "NaN is refused", u: clock.Update{FreqPPM: math.NaN()}, wantErr: true, wantFreq: startFreqPPM},
		{name: "+Inf is refused", u: clock.Update{FreqPPM: math.Inf(1)}, wantErr: true, wantFreq: startFreqPPM},

		// Slews: the rate is the least that ends by MinDuration, or the
		// most allowed (MaxRatePPM, and the kernel's ±100000 ppm less the
		// frequency) for as long as it takes.
		{name: "+10 ms at 500 ppm: rate-limited, 20.01 s",
			u:    clock.Update{FreqPPM: 0, Slew: 10 * time.Millisecond, MaxRatePPM: 500, MinDuration: time.Second},
			want: []unix.Timex{rate(10000, 500<<16)}, wantFreq: 0,
			wantSlewS: slewSeconds(10*time.Millisecond, 0, 500e-6), wantRatePPM: 500},
		{name: "-10 ms at 500 ppm over +3 ppm: -497 ppm in the frequency field",
			u:    clock.Update{FreqPPM: 3, Slew: -10 * time.Millisecond, MaxRatePPM: 500, MinDuration: time.Second},
			want: []unix.Timex{rate(10000, -497<<16)}, wantFreq: 3,
			wantSlewS: slewSeconds(-10*time.Millisecond, 3, -500e-6), wantRatePPM: -500},
		{name: "-100 ms through the tick at 83333 ppm over +3 ppm: tick 9167, -30 ppm",
			u:    clock.Update{FreqPPM: 3, Slew: -100 * time.Millisecond, MaxRatePPM: 83333, MinDuration: time.Second},
			want: []unix.Timex{rate(9167, -30<<16)}, wantFreq: 3,
			wantSlewS: slewSeconds(-100*time.Millisecond, 3, -83333e-6), wantRatePPM: -83333},
		{name: "+100 ms at the kernel's limit: tick 11000",
			u:    clock.Update{FreqPPM: 0, Slew: 100 * time.Millisecond, MaxRatePPM: 100000, MinDuration: time.Second},
			want: []unix.Timex{rate(11000, 0)}, wantFreq: 0,
			wantSlewS: slewSeconds(100*time.Millisecond, 0, 0.1), wantRatePPM: 100000},
		{name: "a slew leaves room for the frequency: +600 ppm slews at +99400 at most",
			u:    clock.Update{FreqPPM: 600, Slew: 100 * time.Millisecond, MaxRatePPM: 100000, MinDuration: time.Second},
			want: []unix.Timex{rate(11000, 0)}, wantFreq: 600,
			wantSlewS: slewSeconds(100*time.Millisecond, 600, 99400e-6), wantRatePPM: 99400},
		{name: "and -600 ppm slews down at -99400 at most: tick 9000",
			u:    clock.Update{FreqPPM: -600, Slew: -150 * time.Millisecond, MaxRatePPM: 100000, MinDuration: time.Second},
			want: []unix.Timex{rate(9000, 0)}, wantFreq: -600,
			wantSlewS: slewSeconds(-150*time.Millisecond, -600, -99400e-6), wantRatePPM: -99400},
		{name: "the configured rate beyond the kernel's is capped by it",
			u:    clock.Update{FreqPPM: 0, Slew: 100 * time.Millisecond, MaxRatePPM: 250000, MinDuration: time.Second},
			want: []unix.Timex{rate(11000, 0)}, wantFreq: 0,
			wantSlewS: slewSeconds(100*time.Millisecond, 0, 0.1), wantRatePPM: 100000},
		{name: "+20 µs over the minimum duration: the least rate, realised to 2⁻¹⁶ ppm",
			u:    clock.Update{FreqPPM: 0, Slew: 20 * time.Microsecond, MaxRatePPM: 83333, MinDuration: time.Second},
			want: []unix.Timex{rate(10000, scaled(20e-6/(1-20e-6)*1e6))}, wantFreq: 0,
			wantSlewS: 1, wantRatePPM: float64(scaled(20e-6/(1-20e-6)*1e6)) / 65536},
		{name: "-20 µs over the minimum duration",
			u:    clock.Update{FreqPPM: 0, Slew: -20 * time.Microsecond, MaxRatePPM: 83333, MinDuration: time.Second},
			want: []unix.Timex{rate(10000, -scaled(20e-6/(1+20e-6)*1e6))}, wantFreq: 0,
			wantSlewS: 1, wantRatePPM: -float64(scaled(20e-6/(1+20e-6)*1e6)) / 65536},
		// 700 ppm and a +2005.41 ppm slew: 2700 ppm in the tick.
		{name: "a slew over a coarse frequency: both in the tick",
			u:    clock.Update{FreqPPM: 700, Slew: 2 * time.Millisecond, MaxRatePPM: 83333, MinDuration: time.Second},
			want: []unix.Timex{rate(10027, scaled(700+2e-3*(1+700e-6)/(1-2e-3)*1e6-2700))}, wantFreq: 700,
			wantSlewS: 1, wantRatePPM: 2000 + float64(scaled(700+2e-3*(1+700e-6)/(1-2e-3)*1e6-2700))/65536},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newRecordingKernel()
			k.state.Freq = startFreqPPM << 16
			c, err := clock.New(k)
			if err != nil {
				t.Fatal(err)
			}
			k.calls = nil
			_, now := k.Now()
			end, err := c.Apply(tc.u, now)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Apply(%+v) error %v, want error %v", tc.u, err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, k.calls); diff != "" {
				t.Errorf("adjtimex calls (-want +got):\n%s", diff)
			}
			if got := c.FrequencyPPM(); got != tc.wantFreq {
				t.Errorf("FrequencyPPM = %v, want %v", got, tc.wantFreq)
			}
			slewing, slewEnd := c.SlewEnd()
			if slewing != (tc.wantSlewS != 0) {
				t.Fatalf("slewing %v, want %v", slewing, tc.wantSlewS != 0)
			}
			if !slewing {
				if end != now {
					t.Errorf("Apply returned end %v, want now %v", end, now)
				}
				return
			}
			if end != slewEnd {
				t.Errorf("Apply returned end %v, SlewEnd says %v", end, slewEnd)
			}
			if got, want := (end - now).Seconds(), tc.wantSlewS; math.Abs(got-want) > 1e-9 {
				t.Errorf("slew lasts %.9f s, want %.9f s", got, want)
			}
			// The booking: the phase applied over the slew is the rate the
			// kernel realises (from the recorded fields), not the planned
			// one, so Applied at the end is the slew to the nanosecond
			// and the booked rate is exactly what was written.
			last := k.calls[len(k.calls)-1]
			realized := float64(last.Tick-10000)*100 + float64(last.Freq)/65536 - c.FrequencyPPM()
			if math.Abs(realized-tc.wantRatePPM) > 1e-9 {
				t.Errorf("realised slew rate %.9f ppm, want %.9f ppm", realized, tc.wantRatePPM)
			}
			d := (end - now).Seconds()
			r := realized / 1e6
			wantApplied := clock.Seconds(r * d / (1 + c.FrequencyPPM()/1e6 + r))
			if got := c.Applied(end); (got - wantApplied).Abs() > 1 {
				t.Errorf("Applied(end) = %v, want %v (the realised rate's)", got, wantApplied)
			}
			if got := c.Applied(end); (got - tc.u.Slew).Abs() > 10*time.Nanosecond {
				t.Errorf("Applied(end) = %v, want the slew %v", got, tc.u.Slew)
			}
			if got := c.Applied(now + (end-now)/2); got == 0 || (got-tc.u.Slew/2).Abs() > tc.u.Slew.Abs()/100 {
				t.Errorf("Applied(half way) = %v, want about %v", got, tc.u.Slew/2)
			}
		})
	}
}

// TestSlewEndsTimex: a slew ends by writing the frequency alone (a zero
// slew in the next update, EndSlew, or a step), and the phase booked is
// what the slew added up to that moment, late or early.
func TestSlewEndsTimex(t *testing.T) {
	slew := clock.Update{FreqPPM: 3, Slew: -100 * time.Millisecond, MaxRatePPM: 83333, MinDuration: time.Second}
	tests := []struct {
		name string
		end  func(c *clock.Clock, at time.Duration) error
		at   float64 // when the slew is ended, in planned durations
		want []unix.Timex
	}{
		{"EndSlew on time", func(c *clock.Clock, at time.Duration) error { return c.EndSlew(at) }, 1,
			[]unix.Timex{rate(10000, 3<<16)}},
		{"EndSlew late: the extra phase is booked", func(c *clock.Clock, at time.Duration) error { return c.EndSlew(at) }, 1.5,
			[]unix.Timex{rate(10000, 3<<16)}},
		{"an update without a slew ends it", func(c *clock.Clock, at time.Duration) error {
			_, err := c.Apply(clock.Update{FreqPPM: 3}, at)
			return err
		}, 0.5, []unix.Timex{rate(10000, 3<<16)}},
		{"an update with a coarse frequency ends it in the tick", func(c *clock.Clock, at time.Duration) error {
			_, err := c.Apply(clock.Update{FreqPPM: -700}, at)
			return err
		}, 0.5, []unix.Timex{rate(9993, 0)}},
		{"a step ends it in the same call", func(c *clock.Clock, at time.Duration) error { return c.Step(0, at) }, 0.25,
			[]unix.Timex{{Modes: stepModes | rateModes, Tick: 10000, Freq: 3 << 16}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newRecordingKernel()
			c, err := clock.New(k)
			if err != nil {
				t.Fatal(err)
			}
			_, now := k.Now()
			end, err := c.Apply(slew, now)
			if err != nil {
				t.Fatal(err)
			}
			last := k.calls[len(k.calls)-1]
			r := (float64(last.Tick-10000)*100 + float64(last.Freq)/65536 - 3) / 1e6
			k.calls = nil
			at := now + time.Duration(tc.at*float64(end-now))
			before := c.Applied(at)
			if err := tc.end(c, at); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, k.calls); diff != "" {
				t.Errorf("adjtimex calls (-want +got):\n%s", diff)
			}
			if slewing, _ := c.SlewEnd(); slewing {
				t.Error("still slewing")
			}
			wantPhase := clock.Seconds(r * (at - now).Seconds() / (1 + 3e-6 + r))
			if got := c.Applied(at + time.Hour); (got-wantPhase).Abs() > 1 || got != before {
				t.Errorf("Applied after the end = %v (before it %v), want %v", got, before, wantPhase)
			}
			if tc.at == 1 && (c.Applied(at)-slew.Slew).Abs() > 10 {
				t.Errorf("on time the slew added %v, want %v", c.Applied(at), slew.Slew)
			}
		})
	}
	t.Run("EndSlew without a slew makes no call", func(t *testing.T) {
		k := newRecordingKernel()
		c, err := clock.New(k)
		if err != nil {
			t.Fatal(err)
		}
		k.calls = nil
		if err := c.EndSlew(time.Hour); err != nil || len(k.calls) != 0 || c.Adjustments() != 0 {
			t.Errorf("EndSlew: err %v, %d calls, %d adjustments", err, len(k.calls), c.Adjustments())
		}
	})
}

// TestStatusTimex: the sync status goes into the same call as the rate:
// STA_UNSYNC, the leap flags (STA_INS/STA_DEL) and the errors in µs
// (clamped to the kernel's 0..16 s), the status bits that are not the
// Clock's kept from a read just before, and the kernel PLL/FLL off.
func TestStatusTimex(t *testing.T) {
	const others = unix.STA_NANO | unix.STA_PPSSIGNAL | unix.STA_PPSFREQ | unix.STA_FREQHOLD
	tests := []struct {
		name   string
		before int32
		st     clock.Status
		want   unix.Timex
	}{
		{"synchronised, no leap", unix.STA_UNSYNC | others,
			clock.Status{Synchronized: true, MaxError: 1500 * time.Microsecond, EstError: 200 * time.Microsecond},
			unix.Timex{Status: others, Maxerror: 1500, Esterror: 200}},
		{"synchronised, a leap second to insert", unix.STA_UNSYNC,
			clock.Status{Synchronized: true, MaxError: time.Millisecond, EstError: time.Millisecond, Leap: 1},
			unix.Timex{Status: unix.STA_INS, Maxerror: 1000, Esterror: 1000}},
		{"synchronised, a leap second to delete replaces an insert", unix.STA_INS,
			clock.Status{Synchronized: true, Leap: -1},
			unix.Timex{Status: unix.STA_DEL}},
		{"the leap is withdrawn", unix.STA_DEL | unix.STA_NANO,
			clock.Status{Synchronized: true},
			unix.Timex{Status: unix.STA_NANO}},
		{"unsynchronised", 0,
			clock.Status{MaxError: 16 * time.Second, EstError: 16 * time.Second},
			unix.Timex{Status: unix.STA_UNSYNC, Maxerror: 16_000_000, Esterror: 16_000_000}},
		{"the kernel PLL and FLL left on by ntpd are turned off", unix.STA_PLL | unix.STA_FLL | unix.STA_UNSYNC,
			clock.Status{Synchronized: true},
			unix.Timex{Status: 0}},
		{"errors beyond 16 s clamp, negative ones are 0", unix.STA_UNSYNC,
			clock.Status{Synchronized: true, MaxError: time.Hour, EstError: -time.Second},
			unix.Timex{Status: 0, Maxerror: 16_000_000, Esterror: 0}},
		{"errors in whole µs, truncated", unix.STA_UNSYNC,
			clock.Status{Synchronized: true, MaxError: 1999 * time.Nanosecond, EstError: 999 * time.Nanosecond},
			unix.Timex{Status: 0, Maxerror: 1, Esterror: 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newRecordingKernel()
			k.state.Status = tc.before
			c, err := clock.New(k)
			if err != nil {
				t.Fatal(err)
			}
			k.calls = nil
			st := tc.st
			if _, err := c.Apply(clock.Update{FreqPPM: -2.5, Status: &st}, time.Hour); err != nil {
				t.Fatal(err)
			}
			want := tc.want
			want.Modes, want.Tick, want.Freq = rateModes|statusModes, 10000, -2.5*65536
			if diff := cmp.Diff([]unix.Timex{{}, want}, k.calls); diff != "" {
				t.Errorf("adjtimex calls, a read then the update (-want +got):\n%s", diff)
			}
			if c.Adjustments() != 1 {
				t.Errorf("%d adjustments counted, want 1 (the read is not one)", c.Adjustments())
			}
		})
	}
	t.Run("a failed status read changes nothing", func(t *testing.T) {
		k := newRecordingKernel()
		c, err := clock.New(k)
		if err != nil {
			t.Fatal(err)
		}
		k.calls, k.failReads = nil, syscall.EIO
		if _, err := c.Apply(clock.Update{FreqPPM: 5, Status: &clock.Status{Synchronized: true}}, time.Hour); !errors.Is(err, syscall.EIO) {
			t.Errorf("Apply: %v, want EIO", err)
		}
		if len(k.changes()) != 0 || c.FrequencyPPM() != 0 {
			t.Errorf("changes %v, frequency %v after a failed read", k.changes(), c.FrequencyPPM())
		}
	})
}

// TestStepTimex: a step is ADJ_SETOFFSET with ADJ_NANO, the delta split
// into seconds and nanoseconds within [0, 1e9) (negative deltas borrow a
// second), with the frequency in the same call (ending any slew); the
// kernel's clock moves by exactly the delta and Applied books it.
func TestStepTimex(t *testing.T) {
	tests := []struct {
		name      string
		delta     time.Duration
		freqPPM   float64
		sec, nsec int64
		tick      int64
	}{
		{"+1.5 s", 1500 * time.Millisecond, 0, 1, 500_000_000, 10000},
		{"-1.5 s borrows a second", -1500 * time.Millisecond, 0, -2, 500_000_000, 10000},
		{"-1 ns", -1, 0, -1, 999_999_999, 10000},
		{"+1 ns", 1, 0, 0, 1, 10000},
		{"-2 s exactly", -2 * time.Second, 0, -2, 0, 10000},
		{"+999999999 ns", 999_999_999, 0, 0, 999_999_999, 10000},
		{"-999999999 ns", -999_999_999, 0, -1, 1, 10000},
		{"+1000 s", 1000 * time.Second, 0, 1000, 0, 10000},
		{"-3 days and 1 µs", -(72*time.Hour + time.Microsecond), 0, -259201, 999_999_000, 10000},
		{"zero", 0, 0, 0, 0, 10000},
		{"with +12.5 ppm", -250 * time.Millisecond, 12.5, -1, 750_000_000, 10000},
		{"with a coarse -700 ppm kept in the tick", 250 * time.Millisecond, -700, 0, 250_000_000, 9993},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newRecordingKernel()
			c, err := clock.New(k)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Apply(clock.Update{FreqPPM: tc.freqPPM}, time.Hour); err != nil {
				t.Fatal(err)
			}
			var told []time.Duration
			c.OnStep(func(d time.Duration) { told = append(told, d) })
			k.calls = nil
			if err := c.Step(tc.delta, time.Hour); err != nil {
				t.Fatal(err)
			}
			want := unix.Timex{Modes: stepModes | rateModes, Tick: tc.tick, Freq: scaled(tc.freqPPM - float64(tc.tick-10000)*100)}
			want.Time.Sec, want.Time.Usec = tc.sec, tc.nsec
			if diff := cmp.Diff([]unix.Timex{want}, k.calls); diff != "" {
				t.Errorf("adjtimex calls (-want +got):\n%s", diff)
			}
			if k.steps != tc.delta {
				t.Errorf("the kernel's clock moved by %v, want %v", k.steps, tc.delta)
			}
			if got := c.Applied(2 * time.Hour); got != tc.delta {
				t.Errorf("Applied = %v, want %v", got, tc.delta)
			}
			if len(told) != 1 || told[0] != tc.delta {
				t.Errorf("subscribers told %v, want [%v]", told, tc.delta)
			}
			if c.FrequencyPPM() != tc.freqPPM {
				t.Errorf("FrequencyPPM %v after the step, want %v", c.FrequencyPPM(), tc.freqPPM)
			}
		})
	}
}

// TestTimexErrors: a refused call changes nothing the Clock books, and
// EPERM says what to do about it.
func TestTimexErrors(t *testing.T) {
	calls := []struct {
		name string
		do   func(c *clock.Clock) error
	}{
		{"Apply", func(c *clock.Clock) error {
			_, err := c.Apply(clock.Update{FreqPPM: 40, Slew: time.Millisecond, MaxRatePPM: 500, MinDuration: time.Second}, 2*time.Hour)
			return err
		}},
		{"Step", func(c *clock.Clock) error { return c.Step(time.Second, 2*time.Hour) }},
		{"EndSlew", func(c *clock.Clock) error { return c.EndSlew(2 * time.Hour) }},
	}
	for _, kind := range []struct {
		name  string
		err   error
		match error
	}{
		{"EPERM", syscall.EPERM, clock.ErrPermission},
		{"EINVAL", syscall.EINVAL, syscall.EINVAL},
	} {
		for _, call := range calls {
			t.Run(kind.name+"/"+call.name, func(t *testing.T) {
				k := newRecordingKernel()
				c, err := clock.New(k)
				if err != nil {
					t.Fatal(err)
				}
				// A slew in progress, to see that a failure leaves it.
				if _, err := c.Apply(clock.Update{FreqPPM: 2, Slew: -time.Millisecond, MaxRatePPM: 500, MinDuration: time.Second}, time.Hour); err != nil {
					t.Fatal(err)
				}
				slewing, end := c.SlewEnd()
				applied := c.Applied(time.Hour + time.Second)
				k.fail = kind.err
				err = call.do(c)
				if !errors.Is(err, kind.match) {
					t.Errorf("error %v, want one matching %v", err, kind.match)
				}
				if kind.match == clock.ErrPermission && err.Error() == "" {
					t.Error("empty error")
				}
				if c.Adjustments() != 1 {
					t.Errorf("%d adjustments counted, want 1 (the failed call is not)", c.Adjustments())
				}
				s2, e2 := c.SlewEnd()
				if c.FrequencyPPM() != 2 || s2 != slewing || e2 != end || c.Applied(time.Hour+time.Second) != applied {
					t.Errorf("a failed call changed the booking: freq %v, slewing %v→%v, end %v→%v", c.FrequencyPPM(), slewing, s2, end, e2)
				}
			})
		}
	}
	t.Run("EPERM's message", func(t *testing.T) {
		k := newRecordingKernel()
		k.fail = syscall.EPERM
		c, err := clock.New(k)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Apply(clock.Update{FreqPPM: 1}, time.Hour)
		if err == nil || !errors.Is(err, clock.ErrPermission) {
			t.Fatalf("error %v", err)
		}
		for _, want := range []string{"CAP_SYS_TIME", "--no-clock-control"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q lacks %q", err, want)
			}
		}
	})
}
