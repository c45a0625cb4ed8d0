package discipline

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ntptool/ntptool/clock"
)

var testPolicy = Policy{StepThreshold: time.Second, StepLimit: 3, Panic: 1000 * time.Second}

func newTest() *Discipline {
	return New(Config{Policy: testPolicy, MaxSlewPPM: 83333, MaxFreqPPM: 50000})
}

// in is a settled estimate: 20 µs off, σ 10 µs, 50 ppb σ of frequency.
func in(offsetS float64) Input {
	return Input{OffsetS: offsetS, SigmaS: 10e-6, FreqError: 0.2e-6, SigmaY: 50e-9, FreqPPM: -100, DistanceS: 150e-6}
}

func status(sync bool, sigmaS, distanceS float64, leap int) clock.Status {
	return clock.Status{Synchronized: sync, EstError: clock.Seconds(sigmaS), MaxError: clock.Seconds(3*sigmaS + distanceS), Leap: leap}
}

// Every action the discipline takes, from each state.
func TestUpdateActions(t *testing.T) {
	const us = time.Microsecond
	tests := []struct {
		name string
		prep func(d *Discipline) // the state before
		in   Input
		want Actions
		// pending and updates after the call
		wantPending bool
		wantUpdates int
	}{
		{
			name:        "first update: frequency, and the offset slewed out at once",
			in:          in(20e-6),
			want:        Actions{FreqPPM: -100.2, Slew: -20 * us, SlewDuration: time.Second, MaxSlewPPM: 83333, Status: status(true, 10e-6, 150e-6, 0)},
			wantUpdates: 1,
		},
		{
			// 0.5·σx/σy = 0.5·10 µs/50 ppb = 100 s.
			name:        "later update: slewed over the estimate's time constant",
			prep:        func(d *Discipline) { d.Update(in(0)) },
			in:          in(20e-6),
			want:        Actions{FreqPPM: -100.2, Slew: -20 * us, SlewDuration: 100 * time.Second, MaxSlewPPM: 83333, Status: status(true, 10e-6, 150e-6, 0)},
			wantUpdates: 2,
		},
		{
			// 6σ is twice "significant" (3σ): half the time.
			name:        "a significant offset is slewed proportionally faster",
			prep:        func(d *Discipline) { d.Update(in(0)) },
			in:          in(-60e-6),
			want:        Actions{FreqPPM: -100.2, Slew: 60 * us, SlewDuration: 50 * time.Second, MaxSlewPPM: 83333, Status: status(true, 10e-6, 150e-6, 0)},
			wantUpdates: 2,
		},
		{
			name:        "the leap second goes to the kernel",
			in:          func() Input { x := in(0); x.Leap = 1; return x }(),
			want:        Actions{FreqPPM: -100.2, SlewDuration: time.Second, MaxSlewPPM: 83333, Status: status(true, 10e-6, 150e-6, 1)},
			wantUpdates: 1,
		},
		{
			name:        "a large offset early: step proposed, frequency set, unsynchronised",
			in:          in(10),
			want:        Actions{FreqPPM: -100.2, Step: -10 * time.Second, MaxSlewPPM: 83333, Status: status(false, 10e-6, 150e-6, 0)},
			wantPending: true,
		},
		{
			name:        "while the step is pending: only the frequency and the status",
			prep:        func(d *Discipline) { d.Update(in(10)) },
			in:          in(10.001),
			want:        Actions{FreqPPM: -100.2, MaxSlewPPM: 83333, Status: status(false, 10e-6, 150e-6, 0)},
			wantPending: true,
		},
		{
			name: "after the step limit a large offset is slewed",
			prep: func(d *Discipline) {
				for range 3 {
					d.Update(in(0))
				}
			},
			in:          in(10),
			want:        Actions{FreqPPM: -100.2, Slew: -10 * time.Second, SlewDuration: time.Second, MaxSlewPPM: 83333, Status: status(true, 10e-6, 150e-6, 0)},
			wantUpdates: 4,
		},
		{
			name: "beyond the panic threshold after the first update: hold",
			prep: func(d *Discipline) { d.Update(in(0)) },
			in:   in(2000),
			want: Actions{Hold: errors.New("any")},
			// counted as no update
			wantUpdates: 1,
		},
		{
			name:        "the frequency correction is bounded",
			in:          Input{OffsetS: 0, SigmaS: 1e-6, FreqError: 0.1, SigmaY: 1e-6, FreqPPM: 0},
			want:        Actions{FreqPPM: -50000, SlewDuration: time.Second, MaxSlewPPM: 83333, Status: status(true, 1e-6, 0, 0)},
			wantUpdates: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newTest()
			if tc.prep != nil {
				tc.prep(d)
			}
			got := d.Update(tc.in)
			if (got.Hold != nil) != (tc.want.Hold != nil) {
				t.Fatalf("hold %v, want %v", got.Hold, tc.want.Hold)
			}
			got.Hold, tc.want.Hold = nil, nil
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			if d.StepPending() != tc.wantPending || d.Updates() != tc.wantUpdates {
				t.Errorf("pending %v, updates %d; want %v, %d", d.StepPending(), d.Updates(), tc.wantPending, tc.wantUpdates)
			}
		})
	}
}

// A step proposal is settled by CommitStep with the estimate valid then,
// or by CancelStep: a fast slew instead, or a hold.
func TestStepTwoPhase(t *testing.T) {
	t.Run("commit with the offset now", func(t *testing.T) {
		d := newTest()
		if act := d.Update(in(10)); act.Step != -10*time.Second {
			t.Fatalf("proposal %v, want -10 s", act.Step)
		}
		got := d.CommitStep(in(10.0003)) // the clock drifted while the hooks ran
		want := Actions{FreqPPM: -100.2, Step: clock.Seconds(-10.0003), MaxSlewPPM: 83333, Status: status(true, 10e-6, 150e-6, 0)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("commit (-want +got):\n%s", diff)
		}
		if d.StepPending() || d.Updates() != 1 {
			t.Errorf("pending %v, updates %d after the commit; want false, 1", d.StepPending(), d.Updates())
		}
	})
	t.Run("commit of a zero offset still steps", func(t *testing.T) {
		d := newTest()
		d.Update(in(10))
		if got := d.CommitStep(in(0)); got.Step == 0 {
			t.Error("a committed step of 0 would read as no step")
		}
	})
	t.Run("cancel: slew at once instead", func(t *testing.T) {
		d := newTest()
		d.Update(in(10))
		got := d.CancelStep(in(10), nil)
		want := Actions{FreqPPM: -100.2, Slew: -10 * time.Second, SlewDuration: time.Second, MaxSlewPPM: 83333, Status: status(true, 10e-6, 150e-6, 0)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("cancel (-want +got):\n%s", diff)
		}
		if d.StepPending() || d.Updates() != 1 {
			t.Errorf("pending %v, updates %d; want false, 1", d.StepPending(), d.Updates())
		}
	})
	t.Run("cancel: hold", func(t *testing.T) {
		d := newTest()
		d.Update(in(10))
		reason := errors.New("a pre-step hook failed")
		got := d.CancelStep(in(10), reason)
		if !errors.Is(got.Hold, reason) || got.Slew != 0 || got.Step != 0 || d.StepPending() {
			t.Errorf("cancel with hold: %+v, pending %v; want only the hold", got, d.StepPending())
		}
	})
}

func TestSlewDuration(t *testing.T) {
	tests := []struct {
		name           string
		offset, sx, sy float64
		want           time.Duration
	}{
		{"ordinary: 0.5·σx/σy", 10e-6, 10e-6, 10e-9, 500 * time.Second},
		{"3σ is still ordinary", 30e-6, 10e-6, 10e-9, 500 * time.Second},
		{"10σ: 3/10 of it", -100e-6, 10e-6, 10e-9, 150 * time.Second},
		{"start-up: σy large, at least 1 s", 0.1, 100e-6, 500e-6, time.Second},
		{"tiny σy: at most 4096 s", 1e-6, 10e-6, 1e-12, 4096 * time.Second},
		{"no σ: at once", 1e-3, 0, 0, time.Second},
	}
	for _, tc := range tests {
		if got := slewDuration(tc.offset, tc.sx, tc.sy); got != tc.want {
			t.Errorf("%s: slewDuration(%g, %g, %g) = %v, want %v", tc.name, tc.offset, tc.sx, tc.sy, got, tc.want)
		}
	}
}

func TestFrequency(t *testing.T) {
	tests := []struct{ cur, y, want float64 }{
		{0, 100e-6, -100},
		{-100, 1e-6, -101},
		{-450, 100e-6, -500}, // clamped
		{450, -100e-6, 500},
	}
	for _, tc := range tests {
		if got := Frequency(tc.cur, tc.y, 500); got != tc.want {
			t.Errorf("Frequency(%v, %v) = %v, want %v", tc.cur, tc.y, got, tc.want)
		}
	}
}

func TestLeapVote(t *testing.T) {
	lastDay := time.Date(2026, 12, 31, 12, 0, 0, 0, time.UTC)
	earlier := time.Date(2026, 12, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name                   string
		ins, del, n            int
		utc                    time.Time
		wantArmed, wantAnnounc int
	}{
		{"majority inserts on the last day", 2, 0, 3, lastDay, 1, 1},
		{"majority deletes on the last day", 0, 3, 3, lastDay, -1, -1},
		{"announced, not armed before the last day", 3, 0, 3, earlier, 0, 1},
		{"half is no majority", 1, 0, 2, lastDay, 0, 0},
		{"none", 0, 0, 5, lastDay, 0, 0},
	}
	for _, tc := range tests {
		armed, ann := LeapVote(tc.ins, tc.del, tc.n, tc.utc)
		if armed != tc.wantArmed || ann != tc.wantAnnounc {
			t.Errorf("%s: LeapVote = %d, %d; want %d, %d", tc.name, armed, ann, tc.wantArmed, tc.wantAnnounc)
		}
	}
}
