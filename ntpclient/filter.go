package ntpclient

import "math"

// Filter is a two-state Kalman filter of a clock against one source:
// phase x (local − source, seconds; > 0: the local clock is ahead) and
// frequency y (dx/dt, s/s), under random-walk frequency noise of density
// WanderSq (s²/s³: Var[Δy] = WanderSq·h) and white measurement noise whose
// variance each measurement brings.
//
// Why a Kalman filter and not chrony's regression or RFC 5905's PLL: the
// delay of each exchange bounds its error (|e| ≤ (delay − floor)/2), so
// weighting each sample by its own variance uses all of them, and the
// filter's gain follows the noise and the wander without a window to tune.
// The daemon's phase corrections do not enter at all (the engine feeds
// the filter the clock as it would be without them) and its frequency
// corrections enter as known inputs (AddFrequency), so no sample history
// needs rebasing.
type Filter struct {
	X, Y float64       // state: phase (s), frequency (s/s)
	P    [2][2]float64 // covariance
	// WanderSq is the random-walk frequency noise density w² (1/s).
	WanderSq float64
	// Updates counts accepted measurements.
	Updates int
}

// NewFilter starts a filter with phase x0 and frequency y0 known to the
// given standard deviations.
func NewFilter(x0, sigmaX, y0, sigmaY, wander float64) *Filter {
	return &Filter{
		X: x0, Y: y0,
		P:        [2][2]float64{{sigmaX * sigmaX, 0}, {0, sigmaY * sigmaY}},
		WanderSq: wander * wander,
	}
}

// Predict advances the state by h seconds.
func (f *Filter) Predict(h float64) {
	if h <= 0 {
		return
	}
	f.X += f.Y * h
	p := f.P
	q := f.WanderSq
	// P = F P Fᵀ + Q with F = [[1 h] [0 1]], Q = q[[h³/3 h²/2] [h²/2 h]].
	f.P[0][0] = p[0][0] + 2*h*p[0][1] + h*h*p[1][1] + q*h*h*h/3
	f.P[0][1] = p[0][1] + h*p[1][1] + q*h*h/2
	f.P[1][0] = f.P[0][1]
	f.P[1][1] = p[1][1] + q*h
}

// Innovation returns the residual of a phase measurement z against the
// prediction and its variance given measurement variance r.
func (f *Filter) Innovation(z, r float64) (nu, s float64) {
	return z - f.X, f.P[0][0] + r
}

// Update folds in a phase measurement z of variance r.
func (f *Filter) Update(z, r float64) {
	nu, s := f.Innovation(z, r)
	k0, k1 := f.P[0][0]/s, f.P[1][0]/s
	f.X += k0 * nu
	f.Y += k1 * nu
	p := f.P
	// Joseph-free form is fine here: P stays symmetric positive by
	// construction for scalar updates with r > 0.
	f.P[0][0] = (1 - k0) * p[0][0]
	f.P[0][1] = (1 - k0) * p[0][1]
	f.P[1][0] = f.P[0][1]
	f.P[1][1] = p[1][1] - k1*p[0][1]
	f.Updates++
}

// AddFrequency adds a known frequency change (s/s) applied to the clock.
func (f *Filter) AddFrequency(dy float64) { f.Y += dy }

// SigmaY is the standard deviation of the frequency estimate (s/s).
func (f *Filter) SigmaY() float64 { return math.Sqrt(math.Max(f.P[1][1], 0)) }

// ResetFrequency forgets what is known of the frequency: its variance
// becomes sigmaY² and its correlation with the phase zero.
func (f *Filter) ResetFrequency(sigmaY float64) {
	f.P[1][1] = sigmaY * sigmaY
	f.P[0][1], f.P[1][0] = 0, 0
}

// Inflate multiplies the covariance, to forget after a disturbance.
func (f *Filter) Inflate(k float64) {
	for i := range f.P {
		for j := range f.P[i] {
			f.P[i][j] *= k
		}
	}
}

// SteadyStateSigmaX predicts the RMS phase error of a filter updated every
// h seconds with measurement variance r under wander density q, by
// iterating the Riccati recursion (cheap: a few dozen steps converge).
// It averages the error over the interval, not just at the update.
func SteadyStateSigmaX(h, r, q float64) float64 {
	f := Filter{P: [2][2]float64{{1, 0}, {0, 1e-6}}, WanderSq: q}
	for range 200 {
		f.Predict(h)
		f.Update(0, r)
	}
	// Mean of P00 over the interval after an update: P00 + P01·h + P11·h²/3 + q·h³/12.
	p := f.P
	mean := p[0][0] + p[0][1]*h + p[1][1]*h*h/3 + q*h*h*h/12
	return math.Sqrt(mean)
}

// Bank runs one Filter per hypothesis about the clock's wander and uses
// the one the measurements make most likely (a multiple-model filter):
// no daemon is told how much its oscillator wanders, and the right amount
// sets how fast the filter must follow. The log-likelihood of each model,
// −½(ln S + ν²/S) per measurement, is summed with exponential forgetting,
// so the choice follows a changing oscillator.
type Bank struct {
	models []*Filter
	ll     []float64 // forgotten sum of log-likelihoods
	best   int
}

// bankMemory is how many measurements a Bank's likelihoods remember, and
// bankMargin how much likelier (in nats) another model must be to replace
// the one in use, so that noise does not flip the choice.
const (
	bankMemory = 64
	bankMargin = 3
)

// NewBank starts one filter per wander in wanders (in (s/s)/√s), all
// from the same state; the first wander is preferred until the
// measurements say otherwise.
func NewBank(x0, sigmaX, y0, sigmaY float64, wanders []float64) *Bank {
	b := &Bank{ll: make([]float64, len(wanders))}
	for _, w := range wanders {
		b.models = append(b.models, NewFilter(x0, sigmaX, y0, sigmaY, w))
	}
	return b
}

// Best is the filter in use.
func (b *Bank) Best() *Filter { return b.models[b.best] }

// Predict advances every model by h seconds.
func (b *Bank) Predict(h float64) {
	for _, f := range b.models {
		f.Predict(h)
	}
}

// Update folds a measurement into every model, scores them, and picks the
// most likely.
func (b *Bank) Update(z, r float64) {
	for i, f := range b.models {
		nu, s := f.Innovation(z, r)
		b.ll[i] = b.ll[i]*(1-1.0/bankMemory) - 0.5*(math.Log(s)+nu*nu/s)
		f.Update(z, r)
	}
	for i := range b.models {
		if b.ll[i] > b.ll[b.best]+bankMargin {
			b.best = i
		}
	}
}

// each applies f to every model.
func (b *Bank) each(f func(*Filter)) {
	for _, m := range b.models {
		f(m)
	}
}
