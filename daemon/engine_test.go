package daemon_test

// Engine tests beyond the seven reference scenarios of bench/sim: each case
// runs a scenario of testdata/ through the unchanged engine on the
// simulated kernel and network (internal/sim) for a few seeds and asserts
// what an operator would expect to see. Offsets are clock − true time;
// "window" is the sim's steady-state window, from 2000 s to the end of the
// run. Thresholds come from the analysis in DISCIPLINE-NOTES.md (section 3)
// or from what the engine reaches on the reference scenario (A1 = good1.toml)
// with the same seeds, never from the figures of the case itself.
//
// A case whose expectation the engine does not meet today, for a reason
// that takes more than a one-line fix, is skipped with the root cause; the
// figures behind each are in the engine-test report. NTPTOOL_ENGINE_UNSKIP=1
// runs them too, to check a fix.

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ntptool/ntptool/daemon"
	"github.com/ntptool/ntptool/internal/sim"
)

const (
	// maxAdjPerPoll is the audit figure: adjtimex calls per request in
	// steady state. A clock update is one call and the end of its slew
	// another; more would mean corrections outside the update path.
	maxAdjPerPoll = 2.5
	// syncS is the sim's threshold for "synchronised" (settle < 1 ms).
	syncS = 1e-3
)

// run says what to simulate: a scenario file of testdata/, seeds first..last,
// a duration (s) that overrides the file's, whether to digest the trace (it
// costs most of the run time) and the offset of true time the clock should
// end up following there (the servers' common offset; 0 normally). The
// engine is never told the scenario's wander (sim.Run does not).
type run struct {
	file     string
	seeds    [2]int
	duration float64
	trace    bool
	refS     float64
}

// seedRun is one seed's outcome: the sim's metrics, the engine's status at
// the end and, if the run asked for them, the figures taken from its
// per-second trace.
type seedRun struct {
	seed int
	m    sim.Metrics
	st   daemon.Status
	tr   *traceStats
}

// result is a run over its seeds.
type result struct {
	run
	seeds []seedRun
	sum   sim.Summary // medians, minima and maxima of the metrics
}

func (r *result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s seeds %d-%d, %g s:\n  seed  settle s  RMS µs  max win µs  max µs  poll s  adj/poll", r.file, r.seeds[0].seed, r.seeds[len(r.seeds)-1].seed, r.duration)
	if r.trace {
		fmt.Fprintf(&b, " | relative to %+g s: settle s  RMS µs  max win µs  max µs | mean win µs  max jump s  adjustments", r.refS)
	}
	b.WriteString("\n")
	for _, s := range r.seeds {
		settle := "never"
		if s.m.Settle1msS != nil {
			settle = fmt.Sprintf("%.0f", *s.m.Settle1msS)
		}
		fmt.Fprintf(&b, "  %4d  %8s  %6.1f  %10.1f  %6.0f  %6.0f  %8.2f", s.seed, settle, s.m.RMSOffsetS*1e6,
			s.m.MaxAbsOffsetWindowS*1e6, s.m.MaxAbsOffsetS*1e6, s.m.MeanPollS, s.m.ClockAdjustmentsPerPoll)
		if tr := s.tr; tr != nil {
			settle = "never"
			if tr.settleRefS >= 0 {
				settle = fmt.Sprintf("%.0f", tr.settleRefS)
			}
			fmt.Fprintf(&b, " | %8s  %6.1f  %10.1f  %6.0f | %11.1f  %10.3f  %d..%d", settle, tr.rmsRefWin()*1e6, tr.maxAbsRefWinS*1e6,
				tr.maxAbsRefS*1e6, tr.meanWin()*1e6, tr.maxJumpS, tr.firstAdj, tr.lastAdj)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// traceStats digests the trace sim.Run writes ("t offset_s freq_error_ppb
// polls adjustments", one line per simulated second) into the figures the
// metrics lack: the mean offset (bias), figures relative to refS, the
// largest change of offset in one second, and the adjustment count.
type traceStats struct {
	refS    float64
	partial []byte
	err     error

	n                   int
	prevS               float64
	maxJumpS            float64 // largest |offset(t+1) − offset(t)|
	maxAbsRefS          float64 // whole run, relative to refS
	settleRefS          float64 // start of the last run of |offset − ref| < 1 ms; −1 if none
	nWin                int
	sumWin, sumSqRefWin float64
	maxAbsRefWinS       float64
	firstAdj, lastAdj   int64
	lastT               float64
}

func (s *traceStats) Write(p []byte) (int, error) {
	s.partial = append(s.partial, p...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		s.line(string(s.partial[:i]))
		s.partial = s.partial[i+1:]
	}
}

func (s *traceStats) line(l string) {
	f := strings.Fields(l)
	if len(f) != 5 {
		s.err = fmt.Errorf("trace line %q: want 5 fields", l)
		return
	}
	var v [5]float64
	for i, x := range f {
		var err error
		if v[i], err = strconv.ParseFloat(x, 64); err != nil {
			s.err = fmt.Errorf("trace line %q: %w", l, err)
			return
		}
	}
	t, off, adj := v[0], v[1], int64(v[4])
	rel := off - s.refS
	if s.n == 0 {
		s.firstAdj, s.settleRefS = adj, -1
	} else {
		s.maxJumpS = max(s.maxJumpS, math.Abs(off-s.prevS))
	}
	s.n++
	s.prevS, s.lastAdj, s.lastT = off, adj, t
	s.maxAbsRefS = max(s.maxAbsRefS, math.Abs(rel))
	switch {
	case math.Abs(rel) >= syncS:
		s.settleRefS = -1
	case s.settleRefS < 0:
		s.settleRefS = t
	}
	if t >= sim.DefaultWindowStart.Seconds() {
		s.nWin++
		s.sumWin += off
		s.sumSqRefWin += rel * rel
		s.maxAbsRefWinS = max(s.maxAbsRefWinS, math.Abs(rel))
	}
}

// meanWin is the mean offset over the window (the bias).
func (s *traceStats) meanWin() float64 { return s.sumWin / float64(max(s.nWin, 1)) }

// rmsRefWin is the RMS of offset − refS over the window.
func (s *traceStats) rmsRefWin() float64 { return math.Sqrt(s.sumSqRefWin / float64(max(s.nWin, 1))) }

// runs simulates runs once each: the cases running in parallel share the
// results of the same run (the baselines).
type runs struct {
	mu sync.Mutex
	m  map[run]*runEntry
}

type runEntry struct {
	once sync.Once
	res  *result
	err  error
}

// get returns r's result, simulating it on first use.
func (rs *runs) get(t *testing.T, r run) *result {
	t.Helper()
	rs.mu.Lock()
	if rs.m == nil {
		rs.m = make(map[run]*runEntry)
	}
	e, ok := rs.m[r]
	if !ok {
		e = &runEntry{}
		rs.m[r] = e
	}
	rs.mu.Unlock()
	e.once.Do(func() { e.res, e.err = simulate(r) })
	if e.err != nil {
		t.Fatalf("%s: %v", r.file, e.err)
	}
	return e.res
}

// simulate runs r over its seeds.
func simulate(r run) (*result, error) {
	sc, err := sim.LoadScenario(filepath.Join("testdata", r.file))
	if err != nil {
		return nil, err
	}
	if r.duration > 0 {
		sc.Duration = r.duration
	}
	r.duration = sc.Duration
	res := &result{run: r}
	var all []sim.SeedResult
	for seed := r.seeds[0]; seed <= r.seeds[1]; seed++ {
		var tr *traceStats
		var w io.Writer // nil: no trace
		if r.trace {
			tr = &traceStats{refS: r.refS}
			w = tr
		}
		var m sim.Metrics
		var st daemon.Status
		m, st, err = sc.RunStatus(seed, w)
		if err == nil && tr != nil {
			err = tr.err
		}
		if err != nil {
			return nil, fmt.Errorf("seed %d: %w", seed, err)
		}
		res.seeds = append(res.seeds, seedRun{seed: seed, m: m, st: st, tr: tr})
		all = append(all, sim.SeedResult{Seed: seed, Metrics: m})
	}
	res.sum = sim.Summarize(all)
	return res, nil
}

// Assertions over the seeds of a result. The result's table is logged once
// at the end of each case.

func eachSeed(t *testing.T, r *result, what string, ok func(s seedRun) bool) {
	t.Helper()
	var bad []int
	for _, s := range r.seeds {
		if !ok(s) {
			bad = append(bad, s.seed)
		}
	}
	if len(bad) > 0 {
		t.Errorf("%s: fails for seeds %v", what, bad)
	}
}

func check(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Errorf(format, args...)
	}
}

// audited: the adjtimex calls per poll stay within the audit figure.
func audited(t *testing.T, r *result) {
	t.Helper()
	eachSeed(t, r, fmt.Sprintf("clock adjustments per poll <= %g", maxAdjPerPoll), func(s seedRun) bool {
		return s.m.ClockAdjustmentsPerPoll <= maxAdjPerPoll
	})
}

// settledBy: every seed settles (|offset| < 1 ms to the end) by limitS.
func settledBy(t *testing.T, r *result, limitS float64) {
	t.Helper()
	eachSeed(t, r, fmt.Sprintf("settles below 1 ms by %g s", limitS), func(s seedRun) bool {
		return s.m.Settle1msS != nil && *s.m.Settle1msS <= limitS
	})
}

// windowMaxBelow: every seed's max |offset| over the window stays below limitS.
func windowMaxBelow(t *testing.T, r *result, limitS float64) {
	t.Helper()
	eachSeed(t, r, fmt.Sprintf("max |offset| in the window < %g µs", limitS*1e6), func(s seedRun) bool {
		return s.m.MaxAbsOffsetWindowS < limitS
	})
}

// runMaxBelow: every seed's max |offset| over the whole run stays below limitS.
func runMaxBelow(t *testing.T, r *result, limitS float64) {
	t.Helper()
	eachSeed(t, r, fmt.Sprintf("max |offset| over the whole run < %g µs", limitS*1e6), func(s seedRun) bool {
		return s.m.MaxAbsOffsetS < limitS
	})
}

// medianRMSBelow: the median RMS offset over the seeds stays below limitS.
func medianRMSBelow(t *testing.T, r *result, limitS float64) {
	t.Helper()
	check(t, r.sum.Median.RMSOffsetS <= limitS, "median RMS offset %.1f µs, want <= %.1f µs", r.sum.Median.RMSOffsetS*1e6, limitS*1e6)
}

// rmsLikeA1: the median RMS of offset − ref over the window is within
// 1.25 x A1's (good1) for the same seeds and duration: once settled, where
// the clock started must not matter.
func rmsLikeA1(t *testing.T, rs *runs, r *result) {
	t.Helper()
	var rms []float64
	for _, s := range r.seeds {
		rms = append(rms, s.tr.rmsRefWin())
	}
	slices.Sort(rms)
	med := (rms[(len(rms)-1)/2] + rms[len(rms)/2]) / 2
	a1 := rs.get(t, run{file: "good1.toml", seeds: r.run.seeds, duration: r.duration})
	check(t, med <= 1.25*a1.sum.Median.RMSOffsetS, "median RMS relative to %+g s %.1f µs, want <= 1.25 x %.1f µs (A1)", r.refS, med*1e6, a1.sum.Median.RMSOffsetS*1e6)
}

func TestEngineScenarios(t *testing.T) {
	rs := &runs{}
	seeds4 := [2]int{1, 4}
	// Runs shared by several cases. A1 (good1) is the baseline of the
	// comparisons (combining, loss, wander, jitter).
	base20k := run{file: "good1.toml", seeds: seeds4, duration: 20000}
	base8k20 := run{file: "good1.toml", seeds: [2]int{1, 20}, duration: 8000}
	base12k := run{file: "good1.toml", seeds: seeds4, duration: 12000}
	good3_12k := run{file: "good3.toml", seeds: seeds4, duration: 12000}
	tests := []struct {
		name string
		run  run
		// skip, when set, is the engine's root cause for failing this case.
		skip  string
		check func(t *testing.T, r *result)
	}{
		// Falsetickers. The clock must follow the majority: the good
		// servers alone give about 15-20 µs RMS here (synchronisedWell).
		{
			name:  "falseticker/3 servers, one at +50 ms",
			run:   run{file: "false3.toml", seeds: [2]int{1, 3}, duration: 12000},
			check: synchronisedWell,
		},
		{
			name:  "falseticker/4 servers, one at +50 ms",
			run:   run{file: "false4.toml", seeds: [2]int{1, 3}, duration: 12000},
			check: synchronisedWell,
		},
		{
			name:  "falseticker/5 servers, two disagreeing at +50 and -30 ms",
			run:   run{file: "false5.toml", seeds: [2]int{1, 3}, duration: 12000},
			check: synchronisedWell,
		},
		// The clock starts right, so any excursion is the engine's doing:
		// at no time may it move towards the falseticker (1 ms is 50 times
		// less than the falseticker's offset and 3 times the largest
		// excursion of the good servers' noise in 20 seeds).
		{
			name: "falseticker/started right, never pulled towards it",
			run:  run{file: "false3_start.toml", seeds: seeds4, duration: 10000},
			check: func(t *testing.T, r *result) {
				runMaxBelow(t, r, syncS)
			},
		},
		{
			name:  "falseticker/started right, 30 % loss, never pulled towards it",
			run:   run{file: "false3_loss.toml", seeds: seeds4, duration: 3000},
			check: func(t *testing.T, r *result) { runMaxBelow(t, r, syncS) },
		},
		{
			name: "falseticker/10 s ahead, stepping allowed, never stepped towards it",
			run:  run{file: "false3_10s.toml", seeds: seeds4, duration: 3000, trace: true},
			check: func(t *testing.T, r *result) {
				runMaxBelow(t, r, 1)
				eachSeed(t, r, "no step (no jump > 0.1 s in one second)", func(s seedRun) bool { return s.tr.maxJumpS < 0.1 })
			},
		},
		// Two servers 50 ms apart and no third: there is no majority and no
		// way to tell which one is right. What is right is what chrony and
		// ntpd do: select neither, leave the clock alone (it keeps the
		// drift file's frequency and free-runs: the wander moves it by
		// about 0.6 ms RMS in 10 000 s, hence 5 ms) and report it
		// unsynchronised. Following either one, even once, moves the clock
		// by 25 ms.
		{
			name: "falseticker/2 servers disagree, no majority: follow neither",
			run:  run{file: "split2.toml", seeds: [2]int{1, 3}, duration: 10000, trace: true},
			check: func(t *testing.T, r *result) {
				runMaxBelow(t, r, 5e-3)
				eachSeed(t, r, "no clock adjustment beyond the drift file's frequency", func(s seedRun) bool { return s.tr.lastAdj == s.tr.firstAdj })
				eachSeed(t, r, "the engine does not report itself synchronised", func(s seedRun) bool { return !s.st.Synced })
			},
		},

		// Combining: three good servers must beat one (1/√3 = 0.58 in
		// theory; 0.8 allows for correlated wander), five must not be worse
		// than three.
		{
			name: "combining/3 servers beat 1",
			run:  good3_12k,
			check: func(t *testing.T, r *result) {
				one := rs.get(t, base12k)
				check(t, r.sum.Median.RMSOffsetS <= 0.8*one.sum.Median.RMSOffsetS,
					"median RMS %.1f µs with 3 servers, want <= 0.8 x %.1f µs with 1", r.sum.Median.RMSOffsetS*1e6, one.sum.Median.RMSOffsetS*1e6)
				settledBy(t, r, 200)
			},
		},
		{
			name: "combining/5 servers at least as good as 3",
			run:  run{file: "good5.toml", seeds: seeds4, duration: 12000},
			check: func(t *testing.T, r *result) {
				three := rs.get(t, good3_12k)
				check(t, r.sum.Median.RMSOffsetS <= three.sum.Median.RMSOffsetS,
					"median RMS %.1f µs with 5 servers, want <= %.1f µs with 3", r.sum.Median.RMSOffsetS*1e6, three.sum.Median.RMSOffsetS*1e6)
			},
		},
		// One good server and two with ten times the jitter: weighted by
		// their variances the noisy ones add little, and must never make the
		// clock much worse than the good server alone: RMS within 1.5 x
		// good1's for the same seed (s1's link and the wander draw the same
		// noise in both). Twenty seeds: the failure is a tail.
		{
			name: "combining/1 good + 2 noisy servers no worse than the good one",
			run:  run{file: "mixedjitter.toml", seeds: [2]int{1, 20}, duration: 8000},
			check: func(t *testing.T, r *result) {
				one := rs.get(t, base8k20)
				for i, s := range r.seeds {
					check(t, s.m.RMSOffsetS <= 1.5*one.seeds[i].m.RMSOffsetS, "seed %d: RMS %.1f µs, want <= 1.5 x %.1f µs with the good server alone",
						s.seed, s.m.RMSOffsetS*1e6, one.seeds[i].m.RMSOffsetS*1e6)
				}
			},
		},

		// Loss: still synchronised; fewer samples make it a bit worse. 51 %
		// of exchanges fail at 30 % loss, i.e. half the samples: 2^(3/8) =
		// 1.3 x the RMS in theory, so 2 x is a bit worse; 10 % loss (19 %
		// of exchanges) should cost well under 1.5 x.
		{
			name: "loss/10 %",
			run:  run{file: "loss10.toml", seeds: seeds4, duration: 20000},
			check: func(t *testing.T, r *result) {
				one := rs.get(t, base20k)
				settledBy(t, r, 400)
				medianRMSBelow(t, r, 1.5*one.sum.Median.RMSOffsetS)
				windowMaxBelow(t, r, syncS)
			},
		},
		{
			name: "loss/30 %",
			run:  run{file: "loss30.toml", seeds: seeds4, duration: 20000},
			check: func(t *testing.T, r *result) {
				one := rs.get(t, base20k)
				settledBy(t, r, 600)
				medianRMSBelow(t, r, 2*one.sum.Median.RMSOffsetS)
				windowMaxBelow(t, r, syncS)
			},
		},

		// Asymmetric jitter a = 0.3: a plain mean of offsets is biased by
		// 2aJ = 60 µs. Delay weighting must at least halve that (|bias| <=
		// aJ = 30 µs); an asymmetry estimate would remove it. One seed's
		// mean over 18 000 s still carries ±15 µs of the filter's own slow
		// error, hence the median over seeds.
		{
			name: "asymmetry/jitter asymmetry 0.3, bounded bias",
			run:  run{file: "asym03.toml", seeds: seeds4, duration: 20000, trace: true},
			check: func(t *testing.T, r *result) {
				settledBy(t, r, 200)
				var means []float64
				for _, s := range r.seeds {
					means = append(means, s.tr.meanWin())
				}
				slices.Sort(means)
				bias := (means[(len(means)-1)/2] + means[len(means)/2]) / 2
				check(t, math.Abs(bias) <= 30e-6, "median mean offset (bias) %.1f µs, want within ±30 µs", bias*1e6)
				medianRMSBelow(t, r, 60e-6)
			},
		},

		// Wander ten times A1's. The filter's RMS at a fixed poll grows as
		// w^(1/4) (1.8 x); 100 µs allows the poll to stay where it is.
		{
			name:  "wander/1e-8 stays synchronised",
			run:   run{file: "wander1e8.toml", seeds: seeds4, duration: 20000},
			check: synchronisedWell,
		},
		// The filter's time constant (σ²P/w²)^(1/4) shrinks with the
		// wander, so the poll interval must too (chrony's does).
		{
			name: "wander/1e-8 polls faster than 1e-9",
			run:  run{file: "wander1e8.toml", seeds: seeds4, duration: 20000},
			check: func(t *testing.T, r *result) {
				one := rs.get(t, base20k)
				check(t, r.sum.Median.MeanPollS < 0.75*one.sum.Median.MeanPollS,
					"mean poll %.0f s at wander 1e-8, want < 0.75 x %.0f s at 1e-9", r.sum.Median.MeanPollS, one.sum.Median.MeanPollS)
			},
		},
		// The engine is not told the wander (no daemon is): it must find
		// out. The linear filter's RMS at 64 s would be 2^¼σ^¾w^¼P^⅜ ≈
		// 44 µs (DISCIPLINE-NOTES §3); the delay weighting does better.
		{
			name: "wander/1e-8 found out: near the model's RMS",
			run:  run{file: "wander1e8.toml", seeds: seeds4, duration: 20000},
			check: func(t *testing.T, r *result) {
				medianRMSBelow(t, r, 60e-6)
			},
		},

		// Jitter ten times A1's: σ per sample 0.71 ms. The linear filter's
		// RMS grows as σ^(3/4) (5.6 x, about 140 µs); a clock within 1 ms
		// after settling is what an operator expects (7σ of the filter).
		// The poll must not shorten for noise. Twenty seeds: the failure
		// is a tail.
		{
			name: "jitter/1 ms",
			run:  run{file: "jitter1ms.toml", seeds: [2]int{1, 20}, duration: 8000},
			check: func(t *testing.T, r *result) {
				one := rs.get(t, base8k20)
				settledBy(t, r, 2000)
				medianRMSBelow(t, r, 250e-6)
				windowMaxBelow(t, r, syncS)
				check(t, r.sum.Median.MeanPollS >= one.sum.Median.MeanPollS,
					"mean poll %.0f s at 1 ms jitter, want >= %.0f s at 100 µs", r.sum.Median.MeanPollS, one.sum.Median.MeanPollS)
			},
		},
		// A long, noisy path (20 ms, 2 ms jitter, 2 % loss): σ per sample
		// 1.4 ms, about 240 µs RMS by the same scaling.
		{
			name: "jitter/WAN path 20 ms + 2 ms jitter",
			run:  run{file: "wan.toml", seeds: seeds4, duration: 20000},
			check: func(t *testing.T, r *result) {
				settledBy(t, r, 5000)
				medianRMSBelow(t, r, 400e-6)
				windowMaxBelow(t, r, 2e-3)
			},
		},

		// Fixed 1024 s polling: two polls to learn the frequency, then
		// about 53-68 µs RMS (section 3's table at 1024 s).
		{
			name: "poll/minpoll = maxpoll = 10",
			run:  run{file: "poll1024.toml", seeds: [2]int{1, 3}, duration: 30000},
			check: func(t *testing.T, r *result) {
				settledBy(t, r, 2*1024+64)
				medianRMSBelow(t, r, 100e-6)
				windowMaxBelow(t, r, syncS)
				eachSeed(t, r, "mean poll 1024 s", func(s seedRun) bool { return math.Abs(s.m.MeanPollS-1024) < 30 })
			},
		},

		// A server 10 s ahead of true time: the clock must follow it
		// (figures relative to +10 s). Stepping allowed: a step at the
		// first update, then as A1 (chrony B1: 130 s). Slew only: no step
		// ever, 10 s at 83 333 ppm takes 120 s.
		{
			name: "offset/server +10 s, stepping allowed",
			run:  run{file: "server10s_step.toml", seeds: seeds4, duration: 6000, trace: true, refS: 10},
			check: func(t *testing.T, r *result) {
				eachSeed(t, r, "stepped (a jump > 9 s in one second) and settled on the server by 131 s", func(s seedRun) bool {
					return s.tr.maxJumpS > 9 && s.tr.settleRefS >= 0 && s.tr.settleRefS <= 131
				})
				rmsLikeA1(t, rs, r)
			},
		},
		{
			name: "offset/server +10 s, slew only",
			run:  run{file: "server10s_slew.toml", seeds: seeds4, duration: 6000, trace: true, refS: 10},
			check: func(t *testing.T, r *result) {
				eachSeed(t, r, "never stepped (<= 0.1 s per second) and settled on the server by 200 s", func(s seedRun) bool {
					return s.tr.maxJumpS <= 0.1 && s.tr.settleRefS >= 0 && s.tr.settleRefS <= 200
				})
				rmsLikeA1(t, rs, r)
			},
		},
		// B1 with three servers, and the clock behind: the step must not
		// leave a mark on the steady state (same RMS and poll as good3).
		{
			name: "offset/clock -10 s, 3 servers, stepping allowed",
			run:  run{file: "step3m.toml", seeds: seeds4, duration: 12000},
			check: func(t *testing.T, r *result) {
				three := rs.get(t, good3_12k)
				settledBy(t, r, 131)
				medianRMSBelow(t, r, 1.2*three.sum.Median.RMSOffsetS)
				check(t, r.sum.Median.MeanPollS <= 1.2*three.sum.Median.MeanPollS,
					"mean poll %.0f s, want <= 1.2 x %.0f s without the step", r.sum.Median.MeanPollS, three.sum.Median.MeanPollS)
			},
		},
		{
			name: "offset/clock -0.1 s and 100 ppm slow (A1 mirrored)",
			run:  run{file: "slow.toml", seeds: seeds4, duration: 20000},
			check: func(t *testing.T, r *result) {
				settledBy(t, r, 131)
				medianRMSBelow(t, r, 50e-6)
			},
		},

		// Frequency: a clock 700 ppm fast is outside ADJ_FREQUENCY's
		// ±500 ppm; the tick (±10 %) covers it, as chrony uses it.
		{
			name: "frequency/clock 700 ppm fast",
			run:  run{file: "freq700.toml", seeds: seeds4, duration: 5000},
			check: func(t *testing.T, r *result) {
				settledBy(t, r, 200)
				medianRMSBelow(t, r, 100e-6)
			},
		},
		// A stale drift file (+100 ppm where -100 ppm is right, ntpd
		// format, so no error bound): two polls should find out, as without
		// a drift file (C0 settles in 65 s); 64 s at 200 ppm is 12.8 ms.
		{
			name: "frequency/stale drift file 200 ppm off",
			run:  run{file: "baddrift.toml", seeds: seeds4, duration: 3000},
			check: func(t *testing.T, r *result) {
				settledBy(t, r, 200)
				runMaxBelow(t, r, 15e-3)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip != "" && os.Getenv("NTPTOOL_ENGINE_UNSKIP") == "" {
				t.Skip(tt.skip)
			}
			t.Parallel()
			r := rs.get(t, tt.run)
			tt.check(t, r)
			audited(t, r)
			t.Logf("%s", r)
		})
	}
}

// TestTraceStats checks the trace digest against known lines.
func TestTraceStats(t *testing.T) {
	tr := &traceStats{refS: 10}
	lines := "0 0.000000000 0 0 1\n1 10.000500000 0 1 2\n"
	for sec := 2; sec <= 2001; sec++ {
		lines += fmt.Sprintf("%d 10.000100000 0 1 3\n", sec)
	}
	// Written in odd pieces, as a buffered writer might.
	for chunk := range slices.Chunk([]byte(lines), 7) {
		if _, err := tr.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if tr.err != nil {
		t.Fatal(tr.err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	switch {
	case tr.n != 2002, tr.firstAdj != 1, tr.lastAdj != 3:
		t.Errorf("n %d adjustments %d..%d, want 2002, 1..3", tr.n, tr.firstAdj, tr.lastAdj)
	case !near(tr.maxJumpS, 10.0005), !near(tr.maxAbsRefS, 10), tr.settleRefS != 1:
		t.Errorf("jump %g max %g settle %g, want 10.0005, 10, 1", tr.maxJumpS, tr.maxAbsRefS, tr.settleRefS)
	case tr.nWin != 2, !near(tr.meanWin(), 10.0001), !near(tr.rmsRefWin(), 100e-6):
		t.Errorf("window n %d mean %g rms %g, want 2, 10.0001, 1e-4", tr.nWin, tr.meanWin(), tr.rmsRefWin())
	}
}

// synchronisedWell checks that the clock settles within 200 s and stays
// synchronised: at most 100 µs RMS and 1 ms in the window (far above the
// 15-60 µs the engine gives in these scenarios, far below a falseticker's
// 50 ms).
func synchronisedWell(t *testing.T, r *result) {
	settledBy(t, r, 200)
	medianRMSBelow(t, r, 100e-6)
	windowMaxBelow(t, r, syncS)
}
