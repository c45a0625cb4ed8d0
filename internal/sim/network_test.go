package sim

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func newTestLink(t *testing.T, cfg LinkConfig, seed uint32) *Link {
	t.Helper()
	l, err := NewLink(cfg, NewNoise(seed, 1).Links[0])
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// linkStats draws n packets each way and summarises them.
type linkStats struct {
	MinS, MeanS [2]float64
	LostFrac    [2]float64
}

func drawStats(l *Link, n int) linkStats {
	var st linkStats
	for dir := Up; dir <= Down; dir++ {
		st.MinS[dir] = math.Inf(1)
		var sum float64
		var got, lost int
		for range n {
			d := l.DelayS(dir)
			if d <= 0 {
				lost++
				continue
			}
			got++
			sum += d
			st.MinS[dir] = min(st.MinS[dir], d)
		}
		st.MeanS[dir] = sum / float64(got)
		st.LostFrac[dir] = float64(lost) / float64(n)
	}
	return st
}

func TestLinkDelays(t *testing.T) {
	const n = 200000
	us := func(x float64) float64 { return x * 1e-6 }
	tests := []struct {
		name     string
		cfg      LinkConfig
		wantMean [2]float64 // base + jitter·(1∓2a)
		wantLost float64
	}{
		{"default", DefaultLinkConfig(), [2]float64{us(200), us(200)}, 0},
		{"asymmetric a=0.25: replies slower", LinkConfig{BaseDelay: 100 * time.Microsecond, Jitter: 100 * time.Microsecond, Asymmetry: 0.25},
			[2]float64{us(150), us(250)}, 0},
		{"no jitter", LinkConfig{BaseDelay: 5 * time.Millisecond}, [2]float64{5e-3, 5e-3}, 0},
		{"loss 10 %", LinkConfig{BaseDelay: time.Millisecond, Jitter: 200 * time.Microsecond, Loss: 0.1},
			[2]float64{us(1200), us(1200)}, 0.1},
		{"loss 100 %", LinkConfig{BaseDelay: time.Millisecond, Loss: 1}, [2]float64{math.NaN(), math.NaN()}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := drawStats(newTestLink(t, tt.cfg, 3), n)
			for dir := Up; dir <= Down; dir++ {
				if tt.wantLost < 1 && st.MinS[dir] < tt.cfg.BaseDelay.Seconds() {
					t.Errorf("dir %d: delay %g below the base delay", dir, st.MinS[dir])
				}
				if !math.IsNaN(tt.wantMean[dir]) && math.Abs(st.MeanS[dir]-tt.wantMean[dir]) > 0.01*tt.wantMean[dir] {
					t.Errorf("dir %d: mean delay %g, want %g ± 1 %%", dir, st.MeanS[dir], tt.wantMean[dir])
				}
				if math.Abs(st.LostFrac[dir]-tt.wantLost) > 0.005 {
					t.Errorf("dir %d: lost %g, want %g ± 0.005", dir, st.LostFrac[dir], tt.wantLost)
				}
			}
		})
	}
}

// TestLinkLossKeepsDelays checks that loss draws from its own generator:
// the packets that get through have the delays of the lossless run.
func TestLinkLossKeepsDelays(t *testing.T) {
	lossless := newTestLink(t, DefaultLinkConfig(), 9)
	cfg := DefaultLinkConfig()
	cfg.Loss = 0.3
	lossy := newTestLink(t, cfg, 9)
	lost := 0
	for i := range 1000 {
		for dir := Up; dir <= Down; dir++ {
			want, got := lossless.DelayS(dir), lossy.DelayS(dir)
			if got <= 0 {
				lost++
				continue
			}
			if got != want {
				t.Fatalf("packet %d dir %d: delay %g, lossless %g", i, dir, got, want)
			}
		}
	}
	if lost < 500 || lost > 700 {
		t.Errorf("%d of 2000 lost, want about 600", lost)
	}
}

func TestLinkDelayRounding(t *testing.T) {
	a := newTestLink(t, DefaultLinkConfig(), 1)
	b := newTestLink(t, DefaultLinkConfig(), 1)
	for range 100 {
		s := a.DelayS(Up)
		d, ok := b.Delay(Up)
		if want := time.Duration(math.Round(s * 1e9)); !ok || d != want {
			t.Fatalf("Delay %v %v, want %v true", d, ok, want)
		}
	}
}

func TestLinkConfigValidate(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		cfg  LinkConfig
		ok   bool
	}{
		{"default", DefaultLinkConfig(), true},
		{"base only", LinkConfig{BaseDelay: ms}, true},
		{"jitter only", LinkConfig{Jitter: ms}, true},
		{"zero", LinkConfig{}, false},
		{"negative base", LinkConfig{BaseDelay: -ms, Jitter: ms}, false},
		{"negative jitter", LinkConfig{BaseDelay: ms, Jitter: -ms}, false},
		{"asymmetry 0.5", LinkConfig{BaseDelay: ms, Asymmetry: 0.5}, false},
		{"asymmetry negative", LinkConfig{BaseDelay: ms, Asymmetry: -0.1}, false},
		{"asymmetry NaN", LinkConfig{BaseDelay: ms, Asymmetry: math.NaN()}, false},
		{"loss above 1", LinkConfig{BaseDelay: ms, Loss: 1.5}, false},
		{"loss negative", LinkConfig{BaseDelay: ms, Loss: -0.1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if diff := cmp.Diff(tt.ok, err == nil); diff != "" {
				t.Errorf("err %v (-want ok +got ok):\n%s", err, diff)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("err %v does not wrap ErrInvalidConfig", err)
			}
		})
	}
}
