package estimator

import (
	"math"
	"math/rand/v2"
	"testing"
)

// clockWalk simulates a clock's offset with random-walk frequency noise of
// density wander, observed every h seconds with white noise sigma.
type clockWalk struct {
	rng          *rand.Rand
	x, y         float64
	wander, h, s float64
}

func (c *clockWalk) next() (truth, measured float64) {
	c.y += c.wander * math.Sqrt(c.h) * c.rng.NormFloat64()
	c.x += c.y * c.h
	return c.x, c.x + c.s*c.rng.NormFloat64()
}

// The filter tracks a clock at the model's accuracy: its errors are
// within a few of its own standard deviations, and it learns the
// frequency from nothing.
func TestFilterTracks(t *testing.T) {
	tests := []struct {
		name      string
		y0        float64 // true frequency (s/s)
		wander    float64
		h, sigma  float64
		wantRMSUS float64
	}{
		{"constant 10 ppm, 64 s, 50 µs", 10e-6, 0, 64, 50e-6, 20},
		{"wander 1e-9, 256 s, 50 µs", -5e-6, 1e-9, 256, 50e-6, 40},
		{"wander 1e-8, 64 s, 20 µs", 0, 1e-8, 64, 20e-6, 25},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &clockWalk{rng: rand.New(rand.NewPCG(1, 2)), y: tc.y0, wander: tc.wander, h: tc.h, s: tc.sigma}
			_, z0 := c.next()
			f := NewFilter(z0, 1e-3, 0, 500e-6, math.Max(tc.wander, 1e-11))
			var sum2 float64
			var n, outside int
			for i := range 400 {
				truth, z := c.next()
				f.Predict(tc.h)
				f.Update(z, tc.sigma*tc.sigma)
				if i < 100 {
					continue // settling
				}
				err := f.X - truth
				sum2 += err * err
				n++
				if math.Abs(err) > 4*math.Sqrt(f.P[0][0]) {
					outside++
				}
			}
			rms := math.Sqrt(sum2/float64(n)) * 1e6
			if rms > tc.wantRMSUS || outside > n/50 {
				t.Errorf("RMS %.1f µs (want <= %.0f), %d of %d errors beyond 4σ", rms, tc.wantRMSUS, outside, n)
			}
			if math.Abs(f.Y-c.y) > 4*f.SigmaY() {
				t.Errorf("frequency %.3f ppm, true %.3f ppm, σ %.3f ppm", f.Y*1e6, c.y*1e6, f.SigmaY()*1e6)
			}
		})
	}
}

// The bank's mixture finds a wander near the truth from the data, starting
// from a prior ten times too small or too large.
func TestBankFindsTheWander(t *testing.T) {
	tests := []struct {
		name             string
		truth, prior     float64
		wantMin, wantMax float64
	}{
		{"10× the prior", 1e-8, 1e-9, 3e-9, 3.2e-8},
		{"the prior", 1e-9, 1e-9, 1e-10, 3.2e-9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &clockWalk{rng: rand.New(rand.NewPCG(3, 4)), wander: tc.truth, h: 64, s: 30e-6}
			_, z0 := c.next()
			b := NewBank(z0, 1e-3, 0, 500e-6, hypotheses(tc.prior))
			for range 600 {
				_, z := c.next()
				b.Predict(64)
				b.Update(z, c.s*c.s)
			}
			got := math.Sqrt(b.WanderSq())
			if got < tc.wantMin || got > tc.wantMax {
				t.Errorf("the bank chose wander %.2g, want %.2g..%.2g (truth %.2g)", got, tc.wantMin, tc.wantMax, tc.truth)
			}
		})
	}
}

func TestSteadyStateSigmaXGrowsWithThePoll(t *testing.T) {
	r, q := (50e-6)*(50e-6), 1e-18
	prev := 0.0
	for p := 16.0; p <= 1024; p *= 2 {
		s := SteadyStateSigmaX(p, r, q)
		if s <= prev || math.IsNaN(s) {
			t.Fatalf("σ(%v s) = %g, not above σ at half the poll (%g)", p, s, prev)
		}
		prev = s
	}
}

// Peek is the estimate the bank would give after Predict(h), and leaves
// the bank as it was; the status a daemon publishes after every event
// calls it, so it allocates nothing.
func TestBankPeek(t *testing.T) {
	c := &clockWalk{rng: rand.New(rand.NewPCG(5, 6)), wander: 1e-9, h: 64, s: 30e-6}
	_, z0 := c.next()
	b := NewBank(z0, 1e-3, 0, 500e-6, hypotheses(1e-9))
	for range 50 {
		_, z := c.next()
		b.Predict(64)
		b.Update(z, c.s*c.s)
	}
	before := b.Estimate()
	for _, h := range []float64{0, 1, 64, 1000} {
		got := b.Peek(h)
		moved := &Bank{models: append([]model(nil), b.models...), w: b.w}
		moved.Predict(h)
		if want := moved.Estimate(); got != want {
			t.Errorf("Peek(%v) = %+v, want %+v (Predict, then Estimate)", h, got, want)
		}
		if now := b.Estimate(); now != before {
			t.Errorf("Peek(%v) changed the bank: %+v, was %+v", h, now, before)
		}
	}
	if n := testing.AllocsPerRun(100, func() { b.Peek(64) }); n != 0 {
		t.Errorf("Peek allocates %.0f times, want 0", n)
	}
}

// TestLongestPoll checks the search against the rule as written: every
// interval from minpoll up, all three rules evaluated, the last that
// passes kept. Edge inputs (no wander, no noise, NaN, infinite
// uncertainty) and random ones over the ranges the filter meets.
func TestLongestPoll(t *testing.T) {
	rule := func(minPoll, maxPoll int, r, q, sigmaY float64) int {
		base := SteadyStateSigmaX(math.Ldexp(1, minPoll), r, q)
		want := minPoll
		for p := minPoll + 1; p <= maxPoll; p++ {
			poll := math.Ldexp(1, p)
			tau := math.Pow(r*poll/q, 0.25)
			if SteadyStateSigmaX(poll, r, q) <= 2*base && 2*tau/poll >= minSamples && sigmaY*poll <= driftPerPoll {
				want = p
			}
		}
		return want
	}
	type in struct {
		min, max     int
		r, q, sigmaY float64
	}
	cases := []in{
		{6, 10, 1e-8, 1e-18, 1e-9},
		{6, 10, 1e-8, 0, 1e-9},
		{6, 10, 0, 0, 0},
		{6, 10, 1e-8, 1e-18, math.Inf(1)},
		{6, 10, math.NaN(), 1e-18, 1e-9},
		{4, 4, 1e-8, 1e-18, 1e-9},
		{0, 17, 1e-6, 1e-24, 1e-12},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		lo := rng.IntN(8)
		cases = append(cases, in{lo, lo + rng.IntN(12),
			math.Pow(10, -12+8*rng.Float64()), math.Pow(10, -26+14*rng.Float64()), math.Pow(10, -12+6*rng.Float64())})
	}
	seen := map[int]bool{}
	for _, c := range cases {
		got, want := longestPoll(c.min, c.max, c.r, c.q, c.sigmaY), rule(c.min, c.max, c.r, c.q, c.sigmaY)
		if got != want {
			t.Fatalf("longestPoll%+v = %d, the rule gives %d", c, got, want)
		}
		seen[got-c.min] = true
	}
	if len(seen) < 5 {
		t.Errorf("the cases chose only %d distinct intervals above minpoll: not a test of the search", len(seen))
	}
}
