package daemon_test

// The engine stress set: adversarial servers and hard clocks, each over
// 200 seeds, judged by the worst seed. The scenarios are written here, not
// in testdata, so that each case shows what differs from the defaults of
// bench/sim/A1.toml (one perfect server, 100 µs + 100 µs·Exp(1) each way,
// a clock 100 ppm fast with wander 1e-9, default polling).

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/ntptool/ntptool/daemon"
	"github.com/ntptool/ntptool/internal/race"
	"github.com/ntptool/ntptool/internal/sim"
)

// stressSeeds is how many seeds each case runs: 200, or 10 under the race
// detector (make test runs the set both ways).
var stressSeeds = map[bool]int{false: 200, true: 10}[race.Enabled]

const (
	// sigmaPath is the single-exchange offset σ of the default path:
	// (q_down − q_up)/2 with q ~ 100 µs·Exp(1), √(2·100²)/2 µs.
	sigmaPath = 70.7e-6
)

// spec is a scenario: the servers' offsets and what else differs.
type spec struct {
	offsets  []float64 // each server's clock error (s)
	iburst   bool
	right    bool    // the clock starts right: offset 0 and a correct drift file
	duration float64 // s; default 20 000
	extra    string  // more TOML: [[events]], [network], ...
	clock    string  // [clock] lines replacing offset/freq/wander/drift
}

func (sp spec) text() string {
	var b strings.Builder
	d := sp.duration
	if d == 0 {
		d = 20000
	}
	fmt.Fprintf(&b, "name = \"stress\"\nduration = %g\n[clock]\n", d)
	switch {
	case sp.clock != "":
		b.WriteString(sp.clock + "\n")
	case sp.right:
		b.WriteString("offset = 0\nfreq = 1e-4\nwander = 1e-9\ndrift = \"-100.0\"\n")
	default:
		b.WriteString("offset = 0.1\nfreq = 1e-4\nwander = 1e-9\n")
	}
	for _, o := range sp.offsets {
		fmt.Fprintf(&b, "[[servers]]\noffset = %g\n", o)
	}
	b.WriteString(sp.extra + "\n[client]\nconfig = '''\n")
	for i := range sp.offsets {
		fmt.Fprintf(&b, "[[source]]\nserver = \"s%d\"\niburst = %v\n", i+1, sp.iburst)
	}
	b.WriteString("'''\n")
	return b.String()
}

// stressRun is a scenario's results over the stress seeds.
type stressRun struct {
	res []sim.SeedResult
	sum sim.Summary
}

func runSpec(t *testing.T, sp spec) stressRun {
	t.Helper()
	sc, err := sim.ParseScenario([]byte(sp.text()), "stress")
	if err != nil {
		t.Fatal(err)
	}
	res := sc.RunSeeds(1, stressSeeds)
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("seed %d: %v", r.Seed, r.Err)
		}
	}
	return stressRun{res: res, sum: sim.Summarize(res)}
}

// worst returns the seeds for which bad holds, and the worst value of f.
func (r stressRun) worst(f func(sim.Metrics) float64, bad func(float64) bool) (seeds []int, worst float64) {
	worst = math.Inf(-1)
	for _, s := range r.res {
		v := f(s.Metrics)
		worst = math.Max(worst, v)
		if bad(v) {
			seeds = append(seeds, s.Seed)
		}
	}
	return seeds, worst
}

// maxBelow checks f < limit on every seed.
func (r stressRun) maxBelow(t *testing.T, what string, f func(sim.Metrics) float64, limit float64) {
	t.Helper()
	bad, worst := r.worst(f, func(v float64) bool { return !(v < limit) })
	if len(bad) > 0 {
		t.Errorf("%s: worst %.1f µs, want < %.1f µs; fails for %d seeds: %v", what, worst*1e6, limit*1e6, len(bad), head(bad))
	}
	t.Logf("%s: %s: worst %.1f µs (limit %.1f µs) over %d seeds", t.Name(), what, worst*1e6, limit*1e6, len(r.res))
}

func head(s []int) []int { return s[:min(len(s), 10)] }

func maxWholeRun(m sim.Metrics) float64 { return m.MaxAbsOffsetS }
func maxSettled(m sim.Metrics) float64  { return m.MaxAbsOffsetSettledS }

// Far liars: a minority that agrees on a lie, or a server that turns
// falseticker, must never pull the clock: the largest |offset| stays
// below half the lie and below 0.5 ms, with the clock started right (the
// whole run counts, start-up and iburst included) and with A1's start
// (0.1 s off, no drift file: everything after settling counts).
func TestStressFarLiars(t *testing.T) {
	cases := []struct {
		name    string
		offsets []float64
		iburst  bool
		extra   string
		lieS    float64
	}{
		{"2 of 5 colluding at +1 ms, iburst", []float64{1e-3, 0, 1e-3, 0, 0}, true, "", 1e-3},
		{"2 of 5 colluding at -1 ms, iburst", []float64{0, -1e-3, 0, 0, -1e-3}, true, "", 1e-3},
		{"2 of 5 colluding at +1 ms", []float64{1e-3, 0, 1e-3, 0, 0}, false, "", 1e-3},
		{"3 of 7 colluding at +10 ms, iburst", []float64{0.01, 0, 0, 0.01, 0, 0.01, 0}, true, "", 10e-3},
		{"1 of 3 turns +5 ms at 10 000 s", []float64{0, 0, 0}, false, "[[events]]\nat = 10000\nserver = 2\noffset = 5e-3\n", 5e-3},
		{"2 of 5 turn +5 ms at 10 000 s, iburst", []float64{0, 0, 0, 0, 0}, true,
			"[[events]]\nat = 10000\nserver = 1\noffset = 5e-3\n[[events]]\nat = 10000\nserver = 4\noffset = 5e-3\n", 5e-3},
	}
	for _, tc := range cases {
		limit := math.Min(tc.lieS/2, 0.5e-3)
		for _, right := range []bool{true, false} {
			name := tc.name + map[bool]string{true: ", started right", false: ", started 0.1 s off"}[right]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				r := runSpec(t, spec{offsets: tc.offsets, iburst: tc.iburst, right: right, extra: tc.extra})
				if right {
					r.maxBelow(t, "max |offset| over the whole run", maxWholeRun, limit)
				} else {
					r.maxBelow(t, "max |offset| after settling", maxSettled, limit)
				}
			})
		}
	}
}

// Near liars: one server a few of its path's σ off sits inside everybody's
// interval; it must not be averaged in once the estimates can tell, nor
// followed: over the steady-state window the RMS stays within 1.5 x that
// of the same run with the server honest (the median over the seeds, and
// the 90th percentile of the per-seed ratio: the runs share their noise
// only until their first different poll), and the clock never gets as far
// towards the liar as the lie (the liar is ahead, so the clock would be
// ahead: the largest signed offset, every seed).
func TestStressNearLiars(t *testing.T) {
	for _, n := range []int{3, 4} {
		honest := make([]float64, n)
		var base stressRun
		t.Run(fmt.Sprintf("%d honest servers", n), func(t *testing.T) { base = runSpec(t, spec{offsets: honest}) })
		for _, k := range []float64{2, 3, 5} {
			t.Run(fmt.Sprintf("1 of %d at %g sigma", n, k), func(t *testing.T) {
				lie := k * sigmaPath
				offsets := slices.Clone(honest)
				offsets[1] = lie
				r := runSpec(t, spec{offsets: offsets})
				r.maxBelow(t, "largest offset towards the liar in the window", func(m sim.Metrics) float64 { return m.MaxOffsetWindowS }, lie)
				var ratios []float64
				for i, s := range r.res {
					ratios = append(ratios, s.RMSOffsetS/base.res[i].RMSOffsetS)
				}
				slices.Sort(ratios)
				p90 := ratios[len(ratios)*9/10]
				t.Logf("RMS with the liar / honest: median %.2f, p90 %.2f, worst %.2f; median RMS %.1f µs (honest %.1f µs)",
					ratios[len(ratios)/2], p90, ratios[len(ratios)-1], r.sum.Median.RMSOffsetS*1e6, base.sum.Median.RMSOffsetS*1e6)
				if r.sum.Median.RMSOffsetS > 1.5*base.sum.Median.RMSOffsetS || p90 > 1.5 {
					t.Errorf("RMS with the liar: median %.1f µs against %.1f µs honest, p90 of the per-seed ratio %.2f; want both within 1.5 x",
						r.sum.Median.RMSOffsetS*1e6, base.sum.Median.RMSOffsetS*1e6, p90)
				}
			})
		}
	}
}

// One of two servers turns 50 ms off after the frequency is learnt:
// there is no majority and no telling which is right. The engine stops
// correcting the clock (no clock update from 2000 s after the change to
// the end), holds over on the learned frequency (the clock free-runs: the
// wander moves it by about 0.6 ms RMS in 10 000 s, far less than the 25 ms
// that following either side would) and says so.
func TestStressSplitHoldover(t *testing.T) {
	sp := spec{offsets: []float64{0, 0}, right: true, duration: 15000,
		extra: "[[events]]\nat = 5000\nserver = 2\noffset = 0.05\n"}
	sc, err := sim.ParseScenario([]byte(sp.text()), "split")
	if err != nil {
		t.Fatal(err)
	}
	early := *sc
	early.Duration = 7000
	var bad []string
	for seed := 1; seed <= stressSeeds; seed++ {
		_, mid, err := early.RunStatus(seed, nil)
		if err != nil {
			t.Fatal(err)
		}
		m, end, err := sc.RunStatus(seed, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case end.Updates != mid.Updates:
			bad = append(bad, fmt.Sprintf("seed %d: %d clock updates after 7000 s", seed, end.Updates-mid.Updates))
		case end.State != daemon.Holdover || end.NoSelection == "":
			bad = append(bad, fmt.Sprintf("seed %d: state %v, no-selection %q; want holdover and why", seed, end.State, end.NoSelection))
		case m.MaxAbsOffsetS > 5e-3:
			bad = append(bad, fmt.Sprintf("seed %d: max |offset| %.2f ms", seed, m.MaxAbsOffsetS*1e3))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d seeds: %s", len(bad), stressSeeds, strings.Join(bad[:min(len(bad), 5)], "; "))
	}
}

// Hard clocks and paths: whatever the wander and the path noise, the
// estimator converges and its error bars are honest. Each seed settles;
// the true offset lies within 3 of the engine's standard deviations at
// least 99 % of the seconds (pooled over the seeds); and the estimator's
// RMS error is within 1.5 x the RMS of the standard deviation it claims,
// every seed (its error, not the clock's offset, which also holds the
// slews still under way: the estimate knows of them).
func TestStressHonestEstimates(t *testing.T) {
	cases := []struct {
		name  string
		clock string
		extra string
		// biased: the path's asymmetry biases the samples; the estimator
		// learns it slowly and its σ does not count the bias, so only the
		// 3σ share is checked.
		biased bool
	}{
		{"A1", "", "", false},
		{"wander 1e-8", "offset = 0.1\nfreq = 1e-4\nwander = 1e-8", "", false},
		{"wander 1e-7", "offset = 0.1\nfreq = 1e-4\nwander = 1e-7", "", false},
		{"jitter 1 ms", "", "[network]\njitter = 1e-3\n", false},
		{"WAN 20 ms + 2 ms jitter, 2 % loss", "", "[network]\nbase_delay = 0.02\njitter = 2e-3\nloss = 0.02\n", false},
		{"asymmetric jitter 0.3", "", "[network]\njitter_asymmetry = 0.3\n", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runSpec(t, spec{offsets: []float64{0}, clock: tc.clock, extra: tc.extra})
			var within float64
			var never, loose []int
			for _, s := range r.res {
				within += s.Within3SigmaFraction / float64(len(r.res))
				if s.Settle1msS == nil {
					never = append(never, s.Seed)
				}
				if !tc.biased && s.RMSEstimateErrorS > 1.5*s.RMSSigmaS {
					loose = append(loose, s.Seed)
				}
			}
			t.Logf("within 3σ %.4f of the seconds; median RMS offset %.1f µs, estimate error %.1f µs, σ %.1f µs; median poll %.0f s",
				within, r.sum.Median.RMSOffsetS*1e6, r.sum.Median.RMSEstimateErrorS*1e6, r.sum.Median.RMSSigmaS*1e6, r.sum.Median.MeanPollRunS)
			if within < 0.99 {
				t.Errorf("the true offset is within 3σ of the estimate %.2f %% of the seconds, want >= 99 %%", 100*within)
			}
			if len(never) > 0 {
				t.Errorf("never settled below 1 ms: seeds %v", head(never))
			}
			if len(loose) > 0 {
				t.Errorf("RMS estimate error > 1.5 x the RMS σ the estimator claims: %d seeds, %v", len(loose), head(loose))
			}
		})
	}
}
