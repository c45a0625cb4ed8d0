package discipline

import (
	"math"

	"github.com/ntptool/ntptool/ntpclient"
)

// Combine merges the truechimers' estimates, each weighted by the inverse
// of its variance (the minimum-variance unbiased combination of
// independent estimates; RFC 5905 section 11.2.3 weights by 1/distance
// instead). The result's variances are those of the combination.
func Combine(ests []ntpclient.Estimate) ntpclient.Estimate {
	var wx, wy, sx, sy float64
	for _, e := range ests {
		sx += 1 / e.VarX
		wx += e.X / e.VarX
		sy += 1 / e.VarY
		wy += e.Y / e.VarY
	}
	if sx == 0 || sy == 0 {
		return ntpclient.Estimate{X: math.NaN(), Y: math.NaN(), VarX: math.Inf(1), VarY: math.Inf(1)}
	}
	return ntpclient.Estimate{X: wx / sx, VarX: 1 / sx, Y: wy / sy, VarY: 1 / sy}
}

// combineLimit: a truechimer whose standard deviation exceeds this many
// times the best one's is left out of the combination (like chrony's
// combinelimit): a variance misjudged on a noisy path would cost more than
// the little it could add.
const combineLimit = 3

// Combinable returns the estimates at idx that are worth combining.
func Combinable(ests []ntpclient.Estimate, idx []int) []ntpclient.Estimate {
	best := math.Inf(1)
	for _, i := range idx {
		best = math.Min(best, ests[i].VarX)
	}
	var out []ntpclient.Estimate
	for _, i := range idx {
		if ests[i].VarX <= combineLimit*combineLimit*best {
			out = append(out, ests[i])
		}
	}
	return out
}

// Frequency returns the frequency correction (ppm) that cancels the
// estimated frequency error y (s/s) of a clock corrected by currentPPM,
// within the kernel's ±maxPPM.
func Frequency(currentPPM, y, maxPPM float64) float64 {
	return math.Max(-maxPPM, math.Min(maxPPM, currentPPM-y*1e6))
}
