package estimator

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
//
// The covariance P is carried in two parts. Pc is the part that comes
// from the clock itself — its frequency before the first measurement and
// its wander since — which every source's filter of the same clock shares;
// P − Pc comes from this source's measurement noise (and its first
// measurement's phase), independent of the other sources'. Both follow
// from the filter's gains exactly (P = Pc + Pi under the same linear
// updates), so the engine can combine sources without counting the
// common error once per source, and compare them without the common
// error hiding their differences.
type Filter struct {
	X, Y float64       // state: phase (s), frequency (s/s)
	P    [2][2]float64 // covariance
	Pc   [2][2]float64 // the part of P common to all sources of this clock
	// WanderSq is the random-walk frequency noise density w² (1/s).
	WanderSq float64
}

// NewFilter starts a filter with phase x0 and frequency y0 known to the
// given standard deviations: the phase from this source's first
// measurement, the frequency from what is known of the clock.
func NewFilter(x0, sigmaX, y0, sigmaY, wander float64) *Filter {
	return &Filter{
		X: x0, Y: y0,
		P:        [2][2]float64{{sigmaX * sigmaX, 0}, {0, sigmaY * sigmaY}},
		Pc:       [2][2]float64{{0, 0}, {0, sigmaY * sigmaY}},
		WanderSq: wander * wander,
	}
}

// propagate returns F p Fᵀ + q·Q(h) for F = [[1 h] [0 1]].
func propagate(p [2][2]float64, h, q float64) [2][2]float64 {
	var out [2][2]float64
	out[0][0] = p[0][0] + 2*h*p[0][1] + h*h*p[1][1] + q*h*h*h/3
	out[0][1] = p[0][1] + h*p[1][1] + q*h*h/2
	out[1][0] = out[0][1]
	out[1][1] = p[1][1] + q*h
	return out
}

// Predict advances the state by h seconds.
func (f *Filter) Predict(h float64) {
	if h <= 0 {
		return
	}
	f.X += f.Y * h
	// P = F P Fᵀ + Q with Q = q[[h³/3 h²/2] [h²/2 h]]: the wander is the
	// clock's, common to every source.
	f.P = propagate(f.P, h, f.WanderSq)
	f.Pc = propagate(f.Pc, h, f.WanderSq)
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
	// The simple form keeps P symmetric and positive for scalar updates
	// with r > 0; the determinant only shrinks by the factor r/s.
	f.P[0][0] = (1 - k0) * p[0][0]
	f.P[0][1] = (1 - k0) * p[0][1]
	f.P[1][0] = f.P[0][1]
	f.P[1][1] = p[1][1] - k1*p[0][1]
	// The common part passes through A = I − K·[1 0]; the measurement's
	// noise, K·r·Kᵀ, is this source's own.
	c := f.Pc
	f.Pc[0][0] = (1 - k0) * (1 - k0) * c[0][0]
	f.Pc[0][1] = (1-k0)*c[0][1] - k1*(1-k0)*c[0][0]
	f.Pc[1][0] = f.Pc[0][1]
	f.Pc[1][1] = c[1][1] - 2*k1*c[0][1] + k1*k1*c[0][0]
}

// AddFrequency adds a known frequency change (s/s) applied to the clock.
func (f *Filter) AddFrequency(dy float64) { f.Y += dy }

// SigmaY is the standard deviation of the frequency estimate (s/s).
func (f *Filter) SigmaY() float64 { return math.Sqrt(math.Max(f.P[1][1], 0)) }

// ResetFrequency forgets what is known of the frequency since h seconds
// ago (the last measurement): its standard deviation becomes sigmaY from
// then on, so the phase predicted since is as uncertain as that makes it,
// and a measurement now fixes both. The clock's frequency is common to the
// sources.
func (f *Filter) ResetFrequency(sigmaY, h float64) {
	v := sigmaY * sigmaY
	for _, p := range []*[2][2]float64{&f.P, &f.Pc} {
		p[0][0] += v * h * h
		p[0][1], p[1][0], p[1][1] = v*h, v*h, v
	}
}

// Inflate multiplies the covariance, to forget after a disturbance.
func (f *Filter) Inflate(k float64) {
	for i := range f.P {
		for j := range f.P[i] {
			f.P[i][j] *= k
			f.Pc[i][j] *= k
		}
	}
}

// SteadyStateSigmaX predicts the RMS phase error of a filter updated every
// h seconds with measurement variance r under wander density q, by
// iterating the Riccati recursion until it settles (a few dozen steps).
// It averages the error over the interval, not just at the update.
func SteadyStateSigmaX(h, r, q float64) float64 {
	p := [2][2]float64{{1, 0}, {0, 1e-6}}
	for range 200 {
		p = propagate(p, h, q)
		s := p[0][0] + r
		k0, k1 := p[0][0]/s, p[1][0]/s
		prev := p[0][0]
		p[1][1] -= k1 * p[0][1]
		p[0][0] *= 1 - k0
		p[0][1] *= 1 - k0
		p[1][0] = p[0][1]
		if math.Abs(p[0][0]-prev) <= 1e-9*prev {
			break
		}
	}
	// Mean of P00 over the interval after an update: P00 + P01·h + P11·h²/3 + q·h³/12.
	mean := p[0][0] + p[0][1]*h + p[1][1]*h*h/3 + q*h*h*h/12
	return math.Sqrt(mean)
}
