package clock

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestPlanStartup(t *testing.T) {
	const unsync = unix.STA_UNSYNC
	// restore is the state-setting call PlanStartup ends with.
	restore := func(status int32, tick, freq int64) unix.Timex {
		return unix.Timex{
			Modes:  unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR | unix.ADJ_FREQUENCY | unix.ADJ_TICK,
			Status: status, Maxerror: maxErrorUS, Esterror: maxErrorUS, Tick: tick, Freq: freq,
		}
	}
	zeroOffset := func(status int32) unix.Timex {
		return unix.Timex{Modes: unix.ADJ_STATUS | unix.ADJ_OFFSET, Status: status}
	}
	tests := []struct {
		name      string
		tx        unix.Timex
		drift     float64
		haveDrift bool
		wantOff   bool
		wantFreq  float64
		want      []unix.Timex
		wantNote  string // a substring of the notes
	}{
		{"fresh boot: nothing to do", unix.Timex{Tick: 10000, Status: unsync}, 0, false, false, 0, nil, ""},
		{"fresh boot with a drift file: the engine applies it", unix.Timex{Tick: 10000, Status: unsync}, 12.5, true, false, 12.5, nil, ""},
		{"a previous run's frequency, no drift file: kept", unix.Timex{Tick: 10000, Freq: -3 * 65536, Status: unsync}, 0, false, false, -3, nil, ""},
		{"crash mid-slew (tick +5 %), drift file: nominal tick, drift's frequency",
			unix.Timex{Tick: 10500, Freq: 7 * 65536, Status: unsync}, 7.25, true, true, 7.25,
			[]unix.Timex{restore(unsync, 10000, int64(math.Round(7.25*65536)))}, "tick 10500 µs is off nominal"},
		{"crash mid-slew (tick -3 %), no drift file: nominal tick, the frequency field alone",
			unix.Timex{Tick: 9700, Freq: -20 * 65536, Status: unsync}, 0, false, true, -20,
			[]unix.Timex{restore(unsync, 10000, -20*65536)}, "from the kernel's frequency field"},
		{"coarse frequency beyond 500 ppm from the drift file goes back into the tick",
			unix.Timex{Tick: 10007, Status: unsync}, 700, true, true, 700,
			[]unix.Timex{restore(unsync, 10007, 0)}, "from the drift file"},
		{"synchronised by a previous daemon: marked unsynchronised",
			unix.Timex{Tick: 10000, Freq: 65536, Status: 0}, 0, false, false, 1,
			[]unix.Timex{restore(unsync, 10000, 65536)}, "marking it unsynchronised"},
		{"ntpd's kernel PLL with a pending offset (µs): zeroed, then off",
			unix.Timex{Tick: 10000, Freq: 2 * 65536, Status: unix.STA_PLL, Offset: -1500}, 2, true, false, 2,
			[]unix.Timex{zeroOffset(unix.STA_PLL), restore(unsync, 10000, 2*65536)}, "-0.001500 s is pending"},
		{"a pending offset in ns (STA_NANO), PLL off: zeroed through the PLL",
			unix.Timex{Tick: 10000, Status: unsync | unix.STA_NANO, Offset: 2_000_000}, 0, false, false, 0,
			[]unix.Timex{zeroOffset(unsync | unix.STA_PLL), restore(unsync, 10000, 0)}, "+0.002000 s"},
		{"leap flag and FLL left set; other bits kept",
			unix.Timex{Tick: 10000, Status: unsync | unix.STA_INS | unix.STA_FLL | unix.STA_PPSFREQ | unix.STA_FREQHOLD}, 0, false, false, 0,
			[]unix.Timex{restore(unsync, 10000, 0)}, "STA_INS/STA_DEL"},
		{"a bad drift value is ignored", unix.Timex{Tick: 10100, Freq: 65536, Status: unsync}, math.NaN(), true, true, 1,
			[]unix.Timex{restore(unsync, 10000, 65536)}, "ignored"},
		{"drift beyond the correction range is ignored", unix.Timex{Tick: 10000, Status: unsync}, 60000, true, false, 0, nil, "outside"},
		{"an unfilled tick counts as nominal", unix.Timex{Status: unsync}, 0, false, false, 0, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := PlanStartup(tc.tx, tc.drift, tc.haveDrift)
			if p.TickOffNominal != tc.wantOff {
				t.Errorf("TickOffNominal = %v, want %v", p.TickOffNominal, tc.wantOff)
			}
			if p.FreqPPM != tc.wantFreq {
				t.Errorf("FreqPPM = %v, want %v", p.FreqPPM, tc.wantFreq)
			}
			if diff := cmp.Diff(tc.want, p.Restore); diff != "" {
				t.Errorf("Restore (-want +got):\n%s", diff)
			}
			if notes := strings.Join(p.Notes, "\n"); !strings.Contains(notes, tc.wantNote) || tc.wantNote == "" && notes != "" {
				t.Errorf("notes %q, want %q", notes, tc.wantNote)
			}
		})
	}
}

// The restore calls, applied to a kernel (Null stands in for it), leave
// the state a Clock expects: nominal tick, the plan's frequency, PLL and
// leap flags off, unsynchronised; and clock.New then reads that frequency.
func TestPlanStartupApplied(t *testing.T) {
	n := NewNull(fixedBase{})
	crash := unix.Timex{Modes: unix.ADJ_TICK | unix.ADJ_FREQUENCY | unix.ADJ_STATUS, Tick: 10830, Freq: 4 * 65536, Status: unix.STA_INS}
	if _, err := n.Adjtimex(&crash); err != nil {
		t.Fatal(err)
	}
	var now unix.Timex
	if _, err := n.Adjtimex(&now); err != nil {
		t.Fatal(err)
	}
	p := PlanStartup(now, -11.5, true)
	for _, tx := range p.Restore {
		if _, err := n.Adjtimex(&tx); err != nil {
			t.Fatal(err)
		}
	}
	var after unix.Timex
	_, _ = n.Adjtimex(&after)
	if after.Tick != nominalTickUS || after.Status != unix.STA_UNSYNC {
		t.Errorf("after restore: tick %d status %#x", after.Tick, after.Status)
	}
	c, err := New(n)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.FrequencyPPM(); math.Abs(got+11.5) > 1e-4 {
		t.Errorf("Clock starts from %v ppm, want -11.5", got)
	}
}

func TestCompareKernel(t *testing.T) {
	ours := unix.Timex{Tick: 10000, Freq: 10 * 65536, Status: unix.STA_NANO, Maxerror: 1000}
	with := func(f func(*unix.Timex)) unix.Timex { tx := ours; f(&tx); return tx }
	tests := []struct {
		name string
		now  unix.Timex
		want Change
		desc string
	}{
		{"unchanged; errors grown by the kernel", with(func(tx *unix.Timex) { tx.Maxerror, tx.Esterror = 9000, 50 }), Change{}, ""},
		{"frequency changed", with(func(tx *unix.Timex) { tx.Freq = -5 * 65536 }),
			Change{Rate: true, OldRatePPM: 10, NewRatePPM: -5, OldTickUS: 10000, NewTickUS: 10000},
			"frequency changed from +10.000 to -5.000 ppm"},
		{"tick changed", with(func(tx *unix.Timex) { tx.Tick = 10010 }),
			Change{Rate: true, OldRatePPM: 10, NewRatePPM: 1010, OldTickUS: 10000, NewTickUS: 10010},
			"frequency changed from +10.000 to +1010.000 ppm (tick 10000 → 10010 µs)"},
		{"kernel PLL turned on with an offset", with(func(tx *unix.Timex) { tx.Status |= unix.STA_PLL; tx.Offset = 250_000 }),
			Change{Offset: true, OffsetNS: 250_000, StatusSet: unix.STA_PLL},
			"kernel PLL offset +0.000250 s set; status STA_PLL set"},
		{"the kernel's own STA_UNSYNC at 16 s is not a change", with(func(tx *unix.Timex) { tx.Status |= unix.STA_UNSYNC; tx.Maxerror = maxErrorUS }), Change{}, ""},
		{"STA_UNSYNC set by someone", with(func(tx *unix.Timex) { tx.Status |= unix.STA_UNSYNC }),
			Change{StatusSet: unix.STA_UNSYNC}, "status STA_UNSYNC set"},
		{"leap flag added, nano mode dropped (not ours to compare)", with(func(tx *unix.Timex) { tx.Status = unix.STA_DEL }),
			Change{StatusSet: unix.STA_DEL}, "status STA_DEL set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := CompareKernel(ours, tc.now)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got.Any() != (tc.desc != "") || got.String() != tc.desc {
				t.Errorf("Any %v, String %q, want %q", got.Any(), got.String(), tc.desc)
			}
		})
	}
	// A pending offset that shrinks is the kernel slewing it out.
	a := unix.Timex{Offset: 900, Tick: 10000}
	if c := CompareKernel(a, unix.Timex{Offset: 600, Tick: 10000}); c.Any() {
		t.Errorf("a shrinking offset is a change: %v", c)
	}
	if c := CompareKernel(a, unix.Timex{Offset: -600, Tick: 10000}); !c.Offset {
		t.Error("an offset of the other sign is not a change")
	}
	// Synchronised (and the leap flag dropped) by someone else.
	last := with(func(tx *unix.Timex) { tx.Status |= unix.STA_UNSYNC | unix.STA_INS })
	if c := CompareKernel(last, ours); c.StatusCleared != unix.STA_UNSYNC|unix.STA_INS || !strings.Contains(c.String(), "STA_INS|STA_UNSYNC cleared") {
		t.Errorf("cleared bits: %+v %q", c, c.String())
	}
}

// Watched sees a change made behind the Clock's back once, and none of
// the Clock's own.
func TestWatched(t *testing.T) {
	n := NewNull(fixedBase{}) // the "kernel"
	w := NewWatched(n)
	if c, err := w.Check(); err != nil || c.Any() {
		t.Fatalf("first check: %v %v", c, err)
	}
	clk, err := New(w)
	if err != nil {
		t.Fatal(err)
	}
	_, mono := clk.Now()
	if _, err := clk.Apply(Update{FreqPPM: 3, Status: &Status{Synchronized: true}}, mono); err != nil {
		t.Fatal(err)
	}
	if c, err := w.Check(); err != nil || c.Any() {
		t.Fatalf("after our own change: %v %v", c, err)
	}
	other := unix.Timex{Modes: unix.ADJ_FREQUENCY, Freq: 40 * 65536} // another process, on the kernel itself
	if _, err := n.Adjtimex(&other); err != nil {
		t.Fatal(err)
	}
	c, err := w.Check()
	if err != nil || !c.Rate || c.OldRatePPM != 3 || c.NewRatePPM != 40 {
		t.Fatalf("external change: %+v %v", c, err)
	}
	if c, _ := w.Check(); c.Any() {
		t.Errorf("the same change reported twice: %v", c)
	}
	if _, err := NewWatched(fixedBase{}).Check(); err == nil {
		t.Error("a failing read is not reported")
	}
}
