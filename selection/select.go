// Package selection picks the sources the clock follows and combines
// them: the intersection of correctness intervals (Marzullo's algorithm,
// RFC 5905 section 11.2.1), a clustering step that drops the source that
// most widens the survivors' spread (section 11.2.2), and the combination
// of the survivors by inverse-variance weights (section 11.2.3 weights by
// 1/distance instead).
//
// # The guarantee
//
// Each candidate brings an interval I_i = [x_i − b_i, x_i + b_i] that
// should contain the true offset θ; a candidate whose interval does is
// correct, any other is wrong, by any amount, colluding with others or
// not. Select only combines a set S of survivors whose intervals share a
// common point and that are a strict majority of the N voting sources
// (|S| > N/2), and it clamps the combined offset to the intersection of
// their intervals. Hence:
//
// If more than half of the N voting sources are correct, then S contains
// at least one correct source (|S| > N/2 > the number of wrong ones), and
// the estimate lies inside the interval of every correct survivor: for
// each such c, |estimate − θ| ≤ 2·b_c. No minority can move the estimate
// out of a correct source's bounds, whatever it reports.
//
// Within those bounds the choice is by agreement, never by order: among
// the stretches of the line that a majority of intervals cover, Select
// takes the one that the most candidates' estimates agree with (|x_i −
// stretch| ≤ 3σ_i), then the most intervals, then the closest agreement
// (the least Σ(|x_i − stretch|/σ_i)²), then the tightest intervals, then
// the one containing the previous estimate; a tie beyond that is reported
// as no majority (the sources cannot tell which side is right). The
// clustering then drops, one at a time, the survivor whose removal most
// reduces the survivors' spread, while that spread exceeds their own
// noise (a χ² test at 99.9 %) and more than a majority would remain; so a
// source a few of its path's standard deviations off, inside everybody's
// interval, is not averaged in once the estimates are tight enough to
// show it.
package selection

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/ntptool/ntptool/estimator"
)

// ErrNoMajority: no strict majority of the voting sources agrees, or two
// stretches of the line are equally well supported.
var ErrNoMajority = errors.New("no majority of the sources agrees")

// Candidate is one source's estimate for selection, predicted to the
// common time of the selection.
type Candidate struct {
	// Est is the source's estimate of the (uncorrected) clock against it:
	// X (s) with VarX, Y (s/s) with VarY.
	Est estimator.Estimate
	// BoundS is the half-width of its correctness interval, in seconds:
	// the root distance and a multiple of the estimate's deviation.
	BoundS float64
}

func (c Candidate) lo() float64 { return c.Est.X - c.BoundS }
func (c Candidate) hi() float64 { return c.Est.X + c.BoundS }

// Result is a selection.
type Result struct {
	// Truechimers are the candidates whose intervals cover the chosen
	// stretch (indices into the candidates, ascending); the others are
	// falsetickers.
	Truechimers []int
	// Survivors are the truechimers the clustering kept, ascending.
	Survivors []int
	// LoS and HiS bound the intersection of the survivors' intervals.
	LoS, HiS float64
	// Estimate is the survivors' combination, its offset within [LoS, HiS].
	// Its variances are the combination's, scaled up when the survivors
	// disagree more than their own variances say (Consistent false).
	Estimate estimator.Estimate
	// Consistent reports whether the survivors agree within their noise.
	Consistent bool
}

// Options are the selection's inputs besides the candidates.
type Options struct {
	// Voters is the number of sources that may take part (at least the
	// number of candidates: a source that has not answered yet still
	// counts, so that one early reply is not a majority).
	Voters int
	// Previous, when HavePrevious, is the offset the last selection
	// estimated, predicted to now: the last tie-break.
	Previous     float64
	HavePrevious bool
}

// agreeSigmas is how many of its standard deviations a candidate's
// estimate may lie from a stretch and still agree with it.
const agreeSigmas = 3

// stretch is a piece of the line between two consecutive interval edges.
type stretch struct {
	lo, hi   float64
	members  []int
	agree    int
	misfit   float64 // Σ (distance/σ)² of the agreeing estimates
	tightSum float64 // Σ 1/b² over the members
	prev     bool    // contains the previous estimate
}

// Select chooses the truechimers and survivors among cands and combines
// the survivors (see the package documentation for the guarantee).
func Select(cands []Candidate, opt Options) (Result, error) {
	voters := max(opt.Voters, len(cands))
	need := voters/2 + 1
	if len(cands) < need {
		return Result{}, fmt.Errorf("%w: %d of %d sources answered", ErrNoMajority, len(cands), voters)
	}
	for _, c := range cands {
		if !finite(c.Est.X, c.Est.VarX, c.Est.Y, c.Est.VarY, c.BoundS) || c.BoundS < 0 || c.Est.VarX <= 0 || c.Est.VarY <= 0 {
			return Result{}, fmt.Errorf("%w: an estimate is not finite", ErrNoMajority)
		}
	}
	best, tied, ok := bestStretch(cands, need, opt)
	if !ok {
		return Result{}, fmt.Errorf("%w: fewer than %d of %d sources' intervals overlap", ErrNoMajority, need, voters)
	}
	if tied {
		return Result{}, fmt.Errorf("%w: two sets of sources are equally well supported", ErrNoMajority)
	}
	survivors, consistent := cluster(cands, best.members, need)
	res := Result{Truechimers: best.members, Survivors: survivors, Consistent: consistent}
	res.LoS, res.HiS = math.Inf(-1), math.Inf(1)
	for _, i := range survivors {
		res.LoS = math.Max(res.LoS, cands[i].lo())
		res.HiS = math.Min(res.HiS, cands[i].hi())
	}
	res.Estimate = combine(cands, survivors)
	res.Estimate.X = math.Max(res.LoS, math.Min(res.HiS, res.Estimate.X))
	return res, nil
}

// bestStretch sweeps the interval edges and returns the best stretch that
// at least need intervals cover; tied is set when another stretch scores
// the same.
func bestStretch(cands []Candidate, need int, opt Options) (best stretch, tied, ok bool) {
	edges := make([]float64, 0, 2*len(cands))
	for _, c := range cands {
		edges = append(edges, c.lo(), c.hi())
	}
	sort.Float64s(edges)
	for k := range edges {
		// Each edge alone (where touching intervals meet), and the open
		// stretch up to the next edge.
		lo := edges[k]
		his := []float64{lo}
		if k+1 < len(edges) && edges[k+1] > lo {
			his = append(his, edges[k+1])
		}
		for _, hi := range his {
			s := stretch{lo: lo, hi: hi}
			for i, c := range cands {
				if c.lo() <= lo && hi <= c.hi() {
					s.members = append(s.members, i)
					s.tightSum += 1 / (c.BoundS*c.BoundS + c.Est.VarX)
				}
				if d := distanceTo(c.Est.X, lo, hi); d*d <= agreeSigmas*agreeSigmas*c.Est.VarX {
					s.agree++
					s.misfit += d * d / c.Est.VarX
				}
			}
			if len(s.members) < need {
				continue
			}
			s.prev = opt.HavePrevious && distanceTo(opt.Previous, lo, hi) == 0
			switch c := compare(s, best); {
			case !ok || c > 0:
				best, tied, ok = s, false, true
			case c == 0 && !sameMembers(s.members, best.members):
				tied = true
			}
		}
	}
	return best, tied, ok
}

// compare orders stretches: more agreement, more members, a closer
// agreement, tighter intervals, then the previous estimate's.
func compare(a, b stretch) int {
	switch {
	case a.agree != b.agree:
		return a.agree - b.agree
	case len(a.members) != len(b.members):
		return len(a.members) - len(b.members)
	case a.misfit != b.misfit:
		if a.misfit < b.misfit {
			return 1
		}
		return -1
	case a.tightSum != b.tightSum:
		if a.tightSum > b.tightSum {
			return 1
		}
		return -1
	case a.prev != b.prev:
		if a.prev {
			return 1
		}
		return -1
	}
	return 0
}

func sameMembers(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// distanceTo is how far x lies outside [lo, hi].
func distanceTo(x, lo, hi float64) float64 {
	switch {
	case x < lo:
		return lo - x
	case x > hi:
		return x - hi
	}
	return 0
}

// chi2Limit999 is the 99.9 % quantile of χ² with k degrees of freedom,
// k = 1..12 (beyond, the Wilson–Hilferty approximation).
var chi2Limit999 = [...]float64{0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59, 31.26, 32.91}

func chi2Limit(k int) float64 {
	if k < len(chi2Limit999) {
		return chi2Limit999[k]
	}
	// Wilson–Hilferty: χ²_k ≈ k(1 − 2/9k + z·√(2/9k))³, z = 3.09.
	a := 2 / (9 * float64(k))
	return float64(k) * math.Pow(1-a+3.09*math.Sqrt(a), 3)
}

// ownVar is the part of a candidate's offset variance that is its own:
// the clock's common error (Estimate.CommonVarX) moves every source's
// estimate alike, so it does not separate them.
func ownVar(c Candidate) float64 {
	return math.Max(c.Est.VarX-c.Est.CommonVarX, 1e-6*c.Est.VarX)
}

// spread is the χ² of the members' offsets about their weighted mean,
// in their own variances.
func spread(cands []Candidate, members []int) float64 {
	var sw, swx float64
	for _, i := range members {
		w := 1 / ownVar(cands[i])
		sw += w
		swx += w * cands[i].Est.X
	}
	mean := swx / sw
	var chi2 float64
	for _, i := range members {
		d := cands[i].Est.X - mean
		chi2 += d * d / ownVar(cands[i])
	}
	return chi2
}

// cluster drops members while their spread exceeds their noise and more
// than need would remain: each time the one whose removal leaves the
// smallest spread. It reports whether the survivors are consistent.
func cluster(cands []Candidate, members []int, need int) ([]int, bool) {
	surv := append([]int(nil), members...)
	for {
		chi2 := spread(cands, surv)
		if chi2 <= chi2Limit(len(surv)-1) {
			return surv, true
		}
		if len(surv) <= need {
			return surv, false
		}
		drop, least := -1, math.Inf(1)
		rest := make([]int, 0, len(surv)-1)
		for k := range surv {
			rest = append(rest[:0], surv[:k]...)
			rest = append(rest, surv[k+1:]...)
			if c := spread(cands, rest); c < least {
				drop, least = k, c
			}
		}
		surv = append(surv[:drop], surv[drop+1:]...)
	}
}

// combine merges the members' estimates, each weighted by the inverse of
// its variance. The combination's variance counts the common part of
// the members' errors once (it does not average out) and their own parts
// as independent; when they disagree more than their own variances say,
// those are scaled by the excess (the Birge ratio), so that the error
// bars stay honest.
func combine(cands []Candidate, members []int) estimator.Estimate {
	var sx, sy float64
	for _, i := range members {
		sx += 1 / cands[i].Est.VarX
		sy += 1 / cands[i].Est.VarY
	}
	birge := 1.0
	if n := len(members); n > 1 {
		birge = math.Max(1, spread(cands, members)/float64(n-1))
	}
	var est estimator.Estimate
	var cx, cy float64 // Σ w·σ of the common parts
	for _, i := range members {
		e := cands[i].Est
		wx, wy := 1/e.VarX/sx, 1/e.VarY/sy
		est.X += wx * e.X
		est.Y += wy * e.Y
		cx += wx * math.Sqrt(e.CommonVarX)
		cy += wy * math.Sqrt(e.CommonVarY)
		est.VarX += wx * wx * birge * ownVar(cands[i])
		est.VarY += wy * wy * math.Max(e.VarY-e.CommonVarY, 0)
	}
	est.CommonVarX, est.CommonVarY = cx*cx, cy*cy
	est.VarX += est.CommonVarX
	est.VarY += est.CommonVarY
	return est
}

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}
