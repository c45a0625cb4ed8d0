package selection

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ntptool/ntptool/estimator"
)

// cand is a candidate at offset x (s) with standard deviation sigma and
// interval half-width bound.
func cand(x, sigma, bound float64) Candidate {
	return Candidate{Est: estimator.Estimate{X: x, VarX: sigma * sigma, VarY: 1e-14}, BoundS: bound}
}

// The guarantee of the package documentation, as a property: with N ≤ 9
// voting sources of which fewer than half are wrong — by any amount from
// 0.2 ms to 1000 s, on either side, colluding (the same lie) or not, with
// any interval widths — the estimate lies inside the interval of every
// correct survivor, and at least one survivor is correct. The correct
// sources' intervals contain the true offset 0; their estimates lie
// anywhere inside.
func TestSelectGuarantee(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	logUniform := func(lo, hi float64) float64 { return lo * math.Pow(hi/lo, rng.Float64()) }
	const trials = 200000
	selected := 0
	for trial := range trials {
		n := 1 + rng.IntN(9)
		wrong := rng.IntN((n + 1) / 2) // fewer than half: 2·wrong < n
		voters := n + rng.IntN(3)      // some may not have answered yet
		cands := make([]Candidate, n)
		correct := make([]bool, n)
		collude := rng.IntN(2) == 0
		lie := logUniform(2e-4, 1000) * float64(1-2*rng.IntN(2))
		for i := range cands {
			bound := logUniform(1e-5, 10)
			sigma := bound * logUniform(1e-3, 0.5)
			if i >= wrong {
				correct[i] = true
				// The interval holds 0: the estimate within ±bound of it.
				cands[i] = cand(bound*(2*rng.Float64()-1), sigma, bound)
				continue
			}
			x := lie
			if !collude {
				x = logUniform(2e-4, 1000) * float64(1-2*rng.IntN(2))
			}
			// Wrong: the interval misses 0 (a liar may make it as wide as
			// it likes, as long as it stays wrong).
			bound = math.Min(bound, math.Abs(x)*rng.Float64())
			sigma = math.Min(sigma, bound/2+1e-12)
			cands[i] = cand(x, sigma, bound)
		}
		// Common parts and frequencies do not matter to the guarantee.
		for i := range cands {
			cands[i].Est.CommonVarX = cands[i].Est.VarX * rng.Float64()
		}
		rng.Shuffle(n, func(i, j int) {
			cands[i], cands[j] = cands[j], cands[i]
			correct[i], correct[j] = correct[j], correct[i]
		})
		res, err := Select(cands, Options{Voters: voters})
		if err != nil {
			if !errors.Is(err, ErrNoMajority) {
				t.Fatalf("trial %d: %v", trial, err)
			}
			// Refusing is always safe; it must not happen while the
			// correct sources, a majority of the voters, have all answered.
			if n-wrong > voters/2 && !tiedCase(err) {
				t.Fatalf("trial %d: %v with %d correct of %d voters\n%s", trial, err, n-wrong, voters, dump(cands, correct))
			}
			continue
		}
		selected++
		x := res.Estimate.X
		anyCorrect := false
		for _, i := range res.Survivors {
			c := cands[i]
			if !correct[i] {
				continue
			}
			anyCorrect = true
			if x < c.lo() || x > c.hi() {
				t.Fatalf("trial %d: estimate %g outside correct survivor %d's interval [%g, %g]\n%s", trial, x, i, c.lo(), c.hi(), dump(cands, correct))
			}
		}
		if !anyCorrect {
			t.Fatalf("trial %d: no correct survivor among %v\n%s", trial, res.Survivors, dump(cands, correct))
		}
		if 2*len(res.Survivors) <= max(voters, n) {
			t.Fatalf("trial %d: %d survivors of %d voters: not a majority", trial, len(res.Survivors), voters)
		}
	}
	if selected < trials/2 {
		t.Errorf("only %d of %d trials selected", selected, trials)
	}
}

// tiedCase reports whether a refusal was for a tie, which the property
// allows: two stretches equally supported by the evidence.
func tiedCase(err error) bool { return strings.Contains(err.Error(), "equally well supported") }

func dump(cands []Candidate, correct []bool) string {
	var out string
	for i, c := range cands {
		out += fmt.Sprintf("  %d correct=%v x=%g σ=%g b=%g\n", i, correct[i], c.Est.X, math.Sqrt(c.Est.VarX), c.BoundS)
	}
	return out
}

func TestSelect(t *testing.T) {
	const us = 1e-6
	tests := []struct {
		name      string
		cands     []Candidate
		voters    int
		wantErr   bool
		truechim  []int
		survivors []int
		wantX     float64 // within 1 µs
	}{
		{
			name:  "one source alone",
			cands: []Candidate{cand(10*us, 5*us, 100*us)}, voters: 1,
			truechim: []int{0}, survivors: []int{0}, wantX: 10 * us,
		},
		{
			name:  "one early reply of three is no majority",
			cands: []Candidate{cand(10*us, 5*us, 100*us)}, voters: 3, wantErr: true,
		},
		{
			name:  "one falseticker of three",
			cands: []Candidate{cand(0, 10*us, 200*us), cand(50e-3, 10*us, 200*us), cand(10*us, 10*us, 200*us)}, voters: 3,
			truechim: []int{0, 2}, survivors: []int{0, 2}, wantX: 5 * us,
		},
		{
			name:  "two disagreeing: no majority",
			cands: []Candidate{cand(-25e-3, 10*us, 200*us), cand(25e-3, 10*us, 200*us)}, voters: 2, wantErr: true,
		},
		{
			// The case: a wide good source overlaps both groups;
			// the two cliques of three tie in size. The good side has its
			// estimates inside its stretch, the liars' side only two.
			name: "a wide source between two cliques: agreement decides",
			cands: []Candidate{
				cand(1e-3, 10*us, 150*us), cand(0, 10*us, 150*us), cand(1.02e-3, 10*us, 150*us),
				cand(-10*us, 10*us, 150*us), cand(100*us, 300*us, 1.2e-3),
			},
			voters: 5, truechim: []int{1, 3, 4}, survivors: []int{1, 3, 4}, wantX: -4.9 * us,
		},
		{
			// A near liar inside everybody's interval, 6σ from the others:
			// the clustering drops it.
			name:      "near liar clustered out",
			cands:     []Candidate{cand(0, 10*us, 300*us), cand(60*us, 10*us, 300*us), cand(2*us, 10*us, 300*us)},
			voters:    3,
			truechim:  []int{0, 1, 2},
			survivors: []int{0, 2}, wantX: 1 * us,
		},
		{
			// Not below a majority: with two of three left the clustering
			// stops even if they disagree; the combination is clamped to
			// their common interval.
			name:      "clustering stops at a majority",
			cands:     []Candidate{cand(0, 10*us, 150*us), cand(200*us, 10*us, 150*us), cand(9e-3, 10*us, 150*us)},
			voters:    3,
			truechim:  []int{0, 1},
			survivors: []int{0, 1}, wantX: 100 * us,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Select(tc.cands, Options{Voters: tc.voters})
			if tc.wantErr {
				if !errors.Is(err, ErrNoMajority) {
					t.Fatalf("err %v, want ErrNoMajority", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Truechimers, tc.truechim) || !slices.Equal(res.Survivors, tc.survivors) {
				t.Errorf("truechimers %v survivors %v, want %v %v", res.Truechimers, res.Survivors, tc.truechim, tc.survivors)
			}
			if math.Abs(res.Estimate.X-tc.wantX) > 1*us {
				t.Errorf("estimate %.2f µs, want %.2f µs", res.Estimate.X/us, tc.wantX/us)
			}
		})
	}
}

// A tie that no evidence breaks is refused, whatever the order: two
// pairs 2 ms apart and a wide source exactly between them. The previous
// estimate breaks it.
func TestSelectTieRefused(t *testing.T) {
	a := []Candidate{cand(-1e-3, 10e-6, 100e-6), cand(-1e-3, 10e-6, 100e-6), cand(1e-3, 10e-6, 100e-6), cand(1e-3, 10e-6, 100e-6), cand(0, 1e-3, 1.5e-3)}
	for _, order := range [][]int{{0, 1, 2, 3, 4}, {2, 3, 0, 1, 4}, {4, 0, 2, 1, 3}} {
		var c []Candidate
		for _, i := range order {
			c = append(c, a[i])
		}
		if _, err := Select(c, Options{Voters: 5}); !errors.Is(err, ErrNoMajority) {
			t.Errorf("order %v: err %v, want a refusal", order, err)
		}
	}
	res, err := Select(a, Options{Voters: 5, Previous: 1e-3, HavePrevious: true})
	if err != nil || !slices.Equal(res.Survivors, []int{2, 3, 4}) {
		t.Errorf("with the previous estimate at +1 ms: survivors %v, %v; want [2 3 4]", res.Survivors, err)
	}
}

// Combining counts the common error once: two sources whose errors are
// all common give no better estimate than one; two independent ones
// halve the variance.
func TestCombineCommonError(t *testing.T) {
	v := 100e-12
	own := []Candidate{cand(0, 10e-6, 1e-3), cand(0, 10e-6, 1e-3)}
	res, err := Select(own, Options{Voters: 2})
	if err != nil || math.Abs(res.Estimate.VarX-v/2) > 1e-18 {
		t.Errorf("independent: VarX %g (%v), want %g", res.Estimate.VarX, err, v/2)
	}
	common := slices.Clone(own)
	for i := range common {
		common[i].Est.CommonVarX = v
	}
	res, err = Select(common, Options{Voters: 2})
	if err != nil || math.Abs(res.Estimate.VarX-v) > 1e-15 {
		t.Errorf("common: VarX %g (%v), want %g", res.Estimate.VarX, err, v)
	}
}

func TestSelectRejectsNonFinite(t *testing.T) {
	for _, c := range []Candidate{cand(math.NaN(), 1e-6, 1e-3), cand(0, 1e-6, math.Inf(1)), cand(0, 0, 1e-3), cand(0, 1e-6, -1)} {
		if _, err := Select([]Candidate{c}, Options{Voters: 1}); !errors.Is(err, ErrNoMajority) {
			t.Errorf("%+v: err %v, want ErrNoMajority", c, err)
		}
	}
}
