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
// all the estimates fit best, each source counting its misfit
// ((x_i − θ)/σ_i)² up to 3² (a robust likelihood: a source either agrees
// with θ, and counts by how well, or does not, and costs the same however
// far off it is); σ_i is the source's own deviation, without the clock's
// error that all sources share. Two separate stretches that fit equally
// well are told apart only by the previous estimate, or reported as no
// majority: the sources cannot tell which side is right. The intervals
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
	best, tied, ok := choose(cands, need, opt)
	if !ok {
		return Result{}, fmt.Errorf("%w: fewer than %d of %d sources' intervals overlap", ErrNoMajority, need, voters)
	}
	if tied {
		return Result{}, fmt.Errorf("%w: two sets of sources are equally well supported", ErrNoMajority)
	}
	var members []int
	for i, c := range cands {
		if c.lo() <= best.x && best.x <= c.hi() {
			members = append(members, i)
		}
	}
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

// agreeSigmas caps a candidate's misfit: an estimate further than this
// many of its own standard deviations from a point disagrees with it, and
// costs the same however far it is.
const agreeSigmas = 3

// point is a candidate for the true offset: where the intervals of at
// least need candidates overlap.
type point struct {
	x       float64
	cost    float64 // robust misfit of all the estimates
	segment int     // the admissible segment it lies in
}

// choose returns the point of the admissible region (covered by at least
// need intervals) that the estimates fit best: the least Σ min((x_i −
// θ)²/v_i, agreeSigmas²) over every candidate, v_i its own variance, a
// robust likelihood in which a source either agrees (and counts by its
// misfit) or does not (and costs the same however far off it is). tied
// is set when a point elsewhere in the region fits as well.
func choose(cands []Candidate, need int, opt Options) (best point, tied, ok bool) {
	segs := admissible(cands, need)
	if len(segs) == 0 {
		return point{}, false, false
	}
	// The misfit is quadratic between the breakpoints x_i ± 3σ_i: on each
	// piece its minimum is the agreeing estimates' weighted mean, clamped
	// to the piece.
	var brk []float64
	for _, c := range cands {
		d := agreeSigmas * math.Sqrt(ownVar(c))
		brk = append(brk, c.Est.X-d, c.Est.X+d)
	}
	var pts []point
	for k, sg := range segs {
		cuts := []float64{sg[0], sg[1]}
		for _, b := range brk {
			if b > sg[0] && b < sg[1] {
				cuts = append(cuts, b)
			}
		}
		sort.Float64s(cuts)
		for j := 0; j+1 < len(cuts) || j == 0; j++ {
			lo, hi := cuts[j], cuts[min(j+1, len(cuts)-1)]
			mid := (lo + hi) / 2
			var sw, swx float64
			for _, c := range cands {
				if v := ownVar(c); (c.Est.X-mid)*(c.Est.X-mid) < agreeSigmas*agreeSigmas*v {
					sw += 1 / v
					swx += c.Est.X / v
				}
			}
			x := mid
			if sw > 0 {
				x = math.Max(lo, math.Min(hi, swx/sw))
			}
			pts = append(pts, point{x: x, cost: misfit(cands, x), segment: k})
			if len(cuts) == 1 {
				break
			}
		}
	}
	best = pts[0]
	for _, p := range pts[1:] {
		if p.cost < best.cost {
			best = p
		}
	}
	// Another admissible segment with a point as good is a tie, broken
	// only by the previous estimate.
	for _, p := range pts {
		if p.segment == best.segment || p.cost > best.cost*(1+1e-9)+1e-12 {
			continue
		}
		if !opt.HavePrevious {
			return best, true, true
		}
		in := func(q point) bool {
			return segs[q.segment][0] <= opt.Previous && opt.Previous <= segs[q.segment][1]
		}
		switch {
		case in(p) && !in(best):
			best = p
		case in(p) == in(best):
			return best, true, true
		}
	}
	return best, false, true
}

// misfit is the robust misfit of every candidate's estimate at x.
func misfit(cands []Candidate, x float64) float64 {
	var cost float64
	for _, c := range cands {
		d := c.Est.X - x
		cost += math.Min(d*d/ownVar(c), agreeSigmas*agreeSigmas)
	}
	return cost
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
