package discipline

import (
	"math"
	"testing"

	"github.com/ntptool/ntptool/ntpclient"
)

func TestCombine(t *testing.T) {
	tests := []struct {
		name         string
		in           []ntpclient.Estimate
		wantX, wantV float64
	}{
		{"one", []ntpclient.Estimate{{X: 1e-3, VarX: 4e-12, VarY: 1}}, 1e-3, 4e-12},
		{"equal weights average", []ntpclient.Estimate{{X: 1e-3, VarX: 1e-12, VarY: 1}, {X: 3e-3, VarX: 1e-12, VarY: 1}}, 2e-3, 0.5e-12},
		{"the tighter one dominates", []ntpclient.Estimate{{X: 0, VarX: 1e-12, VarY: 1}, {X: 9e-3, VarX: 8e-12, VarY: 1}}, 1e-3, 8.0 / 9 * 1e-12},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Combine(tc.in)
			if math.Abs(got.X-tc.wantX) > 1e-12 || math.Abs(got.VarX-tc.wantV) > 1e-18 {
				t.Errorf("Combine = %+v, want X %g VarX %g", got, tc.wantX, tc.wantV)
			}
		})
	}
	if got := Combine(nil); !math.IsNaN(got.X) {
		t.Errorf("Combine(nil) = %+v, want NaN", got)
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
		if got := Frequency(tc.cur, tc.y, 500); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("Frequency(%v, %v) = %v, want %v", tc.cur, tc.y, got, tc.want)
		}
	}
}

func TestCombinable(t *testing.T) {
	ests := []ntpclient.Estimate{{X: 1, VarX: 1}, {X: 2, VarX: 9}, {X: 3, VarX: 9.1}, {X: 4, VarX: 0.5}}
	got := Combinable(ests, []int{0, 1, 2})
	if len(got) != 2 || got[0].X != 1 || got[1].X != 2 {
		t.Errorf("Combinable = %+v, want the first two (σ within 3× the best)", got)
	}
	if got := Combinable(ests, []int{3, 0}); len(got) != 2 {
		t.Errorf("Combinable = %+v, want both (σ 0.71 and 1)", got)
	}
}
