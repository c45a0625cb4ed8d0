package estimator

// Tracker follows one source's phase with the frequency that all the
// sources together estimate, instead of the source's own: a one-state
// Kalman filter of the phase whose prediction is carried by the caller's
// combined phase Φ(u) = ∫ y dt of the clock. Every source watches the same
// clock, but each Estimator's frequency rests on its own samples only, so
// over a gap (after an iburst, a lost reply, a long poll) their own
// predictions drift apart by their independent frequency errors and a
// source measured just now would out-weigh them all. Carried by the
// combined frequency, what separates the sources is their measurements.
//
// The carrying error (the combined frequency's, and the wander) is
// booked as the source's own, not as common: sources averaged over
// different spans (a precise one over a few samples, a noisy one over
// many) pick up different parts of it, so it does not cancel between them
// (booked as common, a noisy source's tracker looked sure of a stale,
// lagging phase and out-voted a precise source).
type Tracker struct {
	x, v, c float64 // phase (s), its variance and the common part of it
	u, phi  float64 // filter time and Φ there
	started bool
}

// Started reports whether the tracker has a state.
func (t *Tracker) Started() bool { return t.started }

// Reset starts the tracker from est at filter time u, where Φ is phi.
func (t *Tracker) Reset(est Estimate, u, phi float64) {
	*t = Tracker{x: est.X, v: est.VarX, c: est.CommonVarX, u: u, phi: phi, started: true}
}

// Predict carries the phase to filter time u, where Φ is phi: the
// combined frequency's variance varY and the wander density q add to its
// variance.
func (t *Tracker) Predict(u, phi, varY, q float64) {
	if h := u - t.u; h > 0 {
		t.v += varY*h*h + q*h*h*h/3
		t.u = u
	}
	t.x += phi - t.phi
	t.phi = phi
}

// Update folds in a phase measurement z of variance r (predict first).
func (t *Tracker) Update(z, r float64) {
	k := t.v / (t.v + r)
	t.x += k * (z - t.x)
	t.v *= 1 - k
	t.c *= (1 - k) * (1 - k)
}

// Phase returns the phase, its variance and the common part.
func (t *Tracker) Phase() (x, varX, commonVarX float64) { return t.x, t.v, t.c }
