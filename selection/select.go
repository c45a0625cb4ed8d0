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
// Within those bounds the choice is by agreement, never by order: of the
// points that a majority of intervals cover, Select takes the one that
// the most sources' estimates agree with (|x_i − θ| ≤ 3σ_i), and among
// those the one all the estimates fit best, by a robust likelihood
// (Student t errors): each source's misfit d_i = (x_i − θ)/σ_i counts as
// 9·ln(1 + d_i²/9), so a source that agrees with θ counts almost as a
// squared error and one that does not only by a logarithm; σ_i is the
// source's own deviation, without the clock's error that all sources
// share. Precision breaks ties but does not buy votes. Two points that
// fit equally well, covered by different sources, are told apart only by
// the previous estimate, or reported as no majority: the sources cannot
// tell which side is right. The intervals
// covering the chosen point are the truechimers. The clustering then
// drops, one at a time, the truechimer whose removal most reduces the
// spread, while that spread exceeds the survivors' own noise (a χ² test at
// 99.9 %) and more than a majority would remain; so a source a few of its
// path's standard deviations off, inside everybody's interval, is not
// averaged in once the estimates are tight enough to show it.
package selection

import (
	"errors"
	"fmt"
	"math"
	"slices"
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
	// X (s) with VarX, Y (s/s) with VarY. The survivors' estimates are
	// combined.
	Est estimator.Estimate
	// Phase, when its VarX is set, is how the source's phase compares
	// with the others' (its measurements carried forward by a frequency
	// common to all the sources, see estimator.Tracker): the intervals,
	// the choice and the clustering use its X, VarX and CommonVarX. Zero:
	// Est's.
	Phase estimator.Estimate
	// BoundS is the half-width of its correctness interval, in seconds:
	// the root distance and a multiple of the estimate's deviation.
	BoundS float64
}

// cmp is the estimate the selection compares.
func (c Candidate) cmp() estimator.Estimate {
	if c.Phase.VarX > 0 {
		return c.Phase
	}
	return c.Est
}

func (c Candidate) lo() float64 { return c.cmp().X - c.BoundS }
func (c Candidate) hi() float64 { return c.cmp().X + c.BoundS }

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

// Select chooses the truechimers and survivors among cands and combines
// the survivors (see the package documentation for the guarantee).
func Select(cands []Candidate, opt Options) (Result, error) {
	voters := max(opt.Voters, len(cands))
	need := voters/2 + 1
	if len(cands) < need {
		return Result{}, fmt.Errorf("%w: %d of %d sources answered", ErrNoMajority, len(cands), voters)
	}
	for _, c := range cands {
		p := c.cmp()
		if !finite(c.Est.X, c.Est.VarX, c.Est.Y, c.Est.VarY, c.BoundS, p.X, p.VarX) || c.BoundS < 0 || c.Est.VarX <= 0 || c.Est.VarY <= 0 {
			return Result{}, fmt.Errorf("%w: an estimate is not finite", ErrNoMajority)
		}
	}
	best, tied, ok := choose(cands, need, opt)
	if !ok {
		return Result{}, fmt.Errorf("%w: fewer than %d of %d sources' intervals overlap", ErrNoMajority, need, voters)
	}
	if tied {
		return Result{}, fmt.Errorf("%w: two sets of sources are equally well supported", ErrNoMajority)
	}
	members := best.members
	survivors, consistent := cluster(cands, members, need)
	res := Result{Truechimers: members, Survivors: survivors, Consistent: consistent}
	res.LoS, res.HiS = math.Inf(-1), math.Inf(1)
	for _, i := range survivors {
		res.LoS = math.Max(res.LoS, cands[i].lo())
		res.HiS = math.Min(res.HiS, cands[i].hi())
	}
	res.Estimate = combine(cands, survivors)
	res.Estimate.X = math.Max(res.LoS, math.Min(res.HiS, res.Estimate.X))
	return res, nil
}

// agreeSigmas is the scale of the robust misfit, in a candidate's own
// standard deviations: an estimate within it of a point agrees with the
// point; beyond it, its misfit grows only as a logarithm.
const agreeSigmas = 3

// point is a candidate for the true offset: where the intervals of at
// least need candidates overlap.
type point struct {
	x       float64
	agree   int     // estimates within agreeSigmas of their own σ
	cost    float64 // robust misfit of all the estimates
	members []int   // the intervals that cover it
}

// better orders points: more agreeing estimates, then a lower misfit.
func (p point) better(q point) bool {
	if p.agree != q.agree {
		return p.agree > q.agree
	}
	return p.cost < q.cost
}

// choose returns the point of the admissible region (covered by at least
// need intervals) that the most estimates agree with (|x_i − θ| ≤ 3σ_i,
// σ_i its own standard deviation), and among those the one they fit best:
// the least Σ ρ(d_i) over every candidate, d_i = (x_i − θ)/σ_i and ρ(d) =
// c²·ln(1 + d²/c²), c = agreeSigmas — the negative log-likelihood of a
// Student t (Cauchy) error, a robust fit in which an estimate near θ
// counts almost as a squared error and a far one only by a logarithm.
// Counting first means that precision breaks ties but does not buy
// votes: two tight liars do not out-vote three looser honest sources.
// tied is set when a point covered by other intervals is as good.
func choose(cands []Candidate, need int, opt Options) (best point, tied, ok bool) {
	segs := admissible(cands, need)
	if len(segs) == 0 {
		return point{}, false, false
	}
	// Candidate points: the local minima of the misfit reached from each
	// estimate, and on each piece between the agreement breakpoints
	// x_i ± 3σ_i the agreeing estimates' weighted mean; each clamped to
	// each admissible stretch, with the stretches' ends.
	xs, brk := make([]float64, 0, 3*len(cands)), make([]float64, 0, 2*len(cands))
	for _, c := range cands {
		xs = append(xs, localMin(cands, c.cmp().X))
		d := agreeSigmas * math.Sqrt(ownVar(c))
		brk = append(brk, c.cmp().X-d, c.cmp().X+d)
	}
	sort.Float64s(brk)
	for k := 0; k+1 < len(brk); k++ {
		if mid := (brk[k] + brk[k+1]) / 2; brk[k+1] > brk[k] {
			var sw, swx float64
			for _, c := range cands {
				if v, x := ownVar(c), c.cmp().X; (x-mid)*(x-mid) <= agreeSigmas*agreeSigmas*v {
					sw += 1 / v
					swx += x / v
				}
			}
			if sw > 0 {
				xs = append(xs, math.Max(brk[k], math.Min(brk[k+1], swx/sw)))
			}
		}
	}
	pts := make([]point, 0, len(segs)*(2+len(xs)))
	for _, sg := range segs {
		pts = append(pts, evaluate(cands, sg[0]), evaluate(cands, sg[1]))
		for _, x := range xs {
			pts = append(pts, evaluate(cands, math.Max(sg[0], math.Min(sg[1], x))))
		}
	}
	best = pts[0]
	for _, p := range pts[1:] {
		if p.better(best) {
			best = p
		}
	}
	best.members = covering(cands, best.x)
	// A point as good that other intervals cover is a tie, broken only by
	// the previous estimate.
	for _, p := range pts {
		if p.agree != best.agree || p.cost > best.cost*(1+1e-9)+1e-12 {
			continue
		}
		p.members = covering(cands, p.x)
		if slices.Equal(p.members, best.members) {
			continue
		}
		if !opt.HavePrevious {
			return best, true, true
		}
		pd, bd := math.Abs(p.x-opt.Previous), math.Abs(best.x-opt.Previous)
		switch {
		case pd < bd:
			best = p
		case pd == bd:
			return best, true, true
		}
	}
	return best, false, true
}

// evaluate scores x.
func evaluate(cands []Candidate, x float64) point {
	p := point{x: x, cost: misfit(cands, x)}
	for _, c := range cands {
		if d := c.cmp().X - x; d*d <= agreeSigmas*agreeSigmas*ownVar(c) {
			p.agree++
		}
	}
	return p
}

// localMin descends the misfit from x by iteratively reweighted least
// squares: each estimate weighted by ρ'(d)/d = 1/(σ²(1 + d²/c²)).
func localMin(cands []Candidate, x float64) float64 {
	for range 30 {
		var sw, swx float64
		for _, c := range cands {
			v := ownVar(c)
			d := c.cmp().X - x
			w := 1 / (v * (1 + d*d/(v*agreeSigmas*agreeSigmas)))
			sw += w
			swx += w * c.cmp().X
		}
		next := swx / sw
		if math.Abs(next-x) <= 1e-15+1e-12*math.Abs(x) {
			return next
		}
		x = next
	}
	return x
}

// misfit is the robust misfit of every candidate's estimate at x.
func misfit(cands []Candidate, x float64) float64 {
	const c2 = agreeSigmas * agreeSigmas
	var cost float64
	for _, c := range cands {
		d := c.cmp().X - x
		cost += c2 * math.Log1p(d*d/(ownVar(c)*c2))
	}
	return cost
}

// covering returns the candidates whose intervals contain x, ascending.
func covering(cands []Candidate, x float64) []int {
	var members []int
	for i, c := range cands {
		if c.lo() <= x && x <= c.hi() {
			members = append(members, i)
		}
	}
	return members
}

// admissible returns the stretches of the line, as [lo, hi] pairs in
// order, that at least need candidates' intervals cover.
func admissible(cands []Candidate, need int) [][2]float64 {
	type edge struct {
		at    float64
		start bool
	}
	edges := make([]edge, 0, 2*len(cands))
	for _, c := range cands {
		edges = append(edges, edge{c.lo(), true}, edge{c.hi(), false})
	}
	// Starts before ends at the same point, so touching intervals overlap.
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at != edges[j].at {
			return edges[i].at < edges[j].at
		}
		return edges[i].start && !edges[j].start
	})
	var segs [][2]float64
	n := 0
	for _, e := range edges {
		if e.start {
			n++
			if n == need {
				segs = append(segs, [2]float64{e.at, e.at})
			}
			continue
		}
		if n == need {
			segs[len(segs)-1][1] = e.at
		}
		n--
	}
	return segs
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
	p := c.cmp()
	return math.Max(p.VarX-p.CommonVarX, 1e-6*p.VarX)
}

// spread is the χ² of the members' compared offsets about their
// weighted mean, in their own variances.
func spread(cands []Candidate, members []int) float64 {
	return spreadOf(cands, members, Candidate.cmp)
}

// spreadOf is spread over the estimates est picks.
func spreadOf(cands []Candidate, members []int, est func(Candidate) estimator.Estimate) float64 {
	own := func(i int) float64 {
		e := est(cands[i])
		return math.Max(e.VarX-e.CommonVarX, 1e-6*e.VarX)
	}
	var sw, swx float64
	for _, i := range members {
		sw += 1 / own(i)
		swx += est(cands[i]).X / own(i)
	}
	mean := swx / sw
	var chi2 float64
	for _, i := range members {
		d := est(cands[i]).X - mean
		chi2 += d * d / own(i)
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
		birge = math.Max(1, spreadOf(cands, members, func(c Candidate) estimator.Estimate { return c.Est })/float64(n-1))
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
		est.VarX += wx * wx * birge * math.Max(e.VarX-e.CommonVarX, 1e-6*e.VarX)
		est.VarY += wy * wy * math.Max(e.VarY-e.CommonVarY, 0)
		est.CovXY += wx * wy * e.CovXY
		est.WanderSq += wx * e.WanderSq
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
