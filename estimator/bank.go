package estimator

import "math"

// Hypothesis is one model of a Bank: the clock's wander ((s/s)/√s) and a
// factor on the measurement variances the caller gives (1: the delays
// explain the noise; more: the path is noisier than its delays say).
type Hypothesis struct {
	Wander, NoiseScale float64
	// LogPrior is the model's prior log-weight (nats, ≤ 0): how much
	// evidence it takes to prefer it.
	LogPrior float64
}

// Bank runs one Filter per hypothesis about the clock's wander and the
// path's noise and mixes them by how well each predicted the measurements
// (a multiple-model adaptive estimator). No daemon is told how much its
// oscillator wanders or how noisy its path is, and the right amounts set
// how fast the filter must follow and how much each sample counts.
//
// Both are chosen by the same likelihood, −½(ln S + ν²/S) per
// measurement, summed with exponential forgetting so that the choice
// follows a changing oscillator or path. Nothing else feeds back into the
// choice: a model that explains large innovations by a small wander and
// much noise competes on the same terms as one that explains them by a
// larger wander. The estimate is the mixture: its covariance includes the
// models' disagreement, so the error bars stay honest while the
// measurements cannot yet tell the models apart.
type Bank struct {
	models []model
	w      []float64 // mixture weights, summing to 1
}

type model struct {
	f        Filter
	scale    float64 // on the measurement variance
	ll       float64 // forgotten sum of log-likelihoods
	logPrior float64
}

// bankMemory is how many measurements a Bank's likelihoods remember:
// about twice the filters' averaging time at the poll the model picks
// (DISCIPLINE-NOTES: 8–24 samples), long enough to tell the hypotheses
// apart, short enough to follow a clock whose wander changes. A longer
// memory let a quiet stretch settle the bank on too small a wander.
const bankMemory = 32

// NewBank starts one filter per hypothesis, all from the same state.
func NewBank(x0, sigmaX, y0, sigmaY float64, hyps []Hypothesis) *Bank {
	b := &Bank{w: make([]float64, len(hyps))}
	for _, h := range hyps {
		b.models = append(b.models, model{f: *NewFilter(x0, sigmaX, y0, sigmaY, h.Wander), scale: h.NoiseScale, logPrior: h.LogPrior})
	}
	b.weigh()
	return b
}

// Predict advances every model by h seconds.
func (b *Bank) Predict(h float64) {
	for i := range b.models {
		b.models[i].f.Predict(h)
	}
}

// Innovation is the mixture's residual of a phase measurement z of
// variance r (before the noise scales) and its predicted variance.
func (b *Bank) Innovation(z, r float64) (nu, s float64) {
	var mean float64
	for i, m := range b.models {
		mean += b.w[i] * m.f.X
	}
	for i, m := range b.models {
		d := m.f.X - mean
		s += b.w[i] * (m.f.P[0][0] + m.scale*r + d*d)
	}
	return z - mean, s
}

// Explains reports whether any model finds a measurement z of variance r
// (before the noise scales) within gate standard deviations of its
// prediction. A measurement no hypothesis explains is an outlier; one that
// only the wilder hypotheses explain is evidence for them, and must reach
// the likelihoods, or a bank that settled on a small wander in a quiet
// spell would reject, as outliers, the very samples that show the clock
// has moved.
func (b *Bank) Explains(z, r, gate float64) bool {
	for _, m := range b.models {
		nu, s := m.f.Innovation(z, m.scale*r)
		if nu*nu <= gate*gate*s {
			return true
		}
	}
	return false
}

// Update folds a measurement z of variance r into every model and weighs
// them again by their likelihoods.
func (b *Bank) Update(z, r float64) {
	for i := range b.models {
		m := &b.models[i]
		nu, s := m.f.Innovation(z, m.scale*r)
		m.ll = m.ll*(1-1.0/bankMemory) - 0.5*(math.Log(s)+nu*nu/s)
		m.f.Update(z, m.scale*r)
	}
	b.weigh()
}

func (b *Bank) weigh() {
	top := math.Inf(-1)
	for _, m := range b.models {
		top = math.Max(top, m.ll+m.logPrior)
	}
	var sum float64
	for i, m := range b.models {
		b.w[i] = math.Exp(m.ll + m.logPrior - top)
		sum += b.w[i]
	}
	for i := range b.w {
		b.w[i] /= sum
	}
}

// Estimate is the mixture's phase and frequency with their variances,
// which include the spread of the models' estimates.
func (b *Bank) Estimate() Estimate { return b.mixture(0) }

// Peek is Estimate predicted h seconds ahead, without changing the bank.
func (b *Bank) Peek(h float64) Estimate { return b.mixture(h) }

// mixture is Estimate over the models' filters predicted h seconds
// ahead: each on a copy, so that the status a daemon publishes after
// every event allocates nothing here.
func (b *Bank) mixture(h float64) Estimate {
	filter := func(i int) Filter {
		f := b.models[i].f
		f.Predict(h)
		return f
	}
	var e Estimate
	for i := range b.models {
		f := filter(i)
		e.X += b.w[i] * f.X
		e.Y += b.w[i] * f.Y
	}
	for i := range b.models {
		f := filter(i)
		dx, dy := f.X-e.X, f.Y-e.Y
		e.VarX += b.w[i] * (f.P[0][0] + dx*dx)
		e.VarY += b.w[i] * (f.P[1][1] + dy*dy)
		e.CovXY += b.w[i] * (f.P[0][1] + dx*dy)
		e.WanderSq += b.w[i] * f.WanderSq
		e.CommonVarX += b.w[i] * f.Pc[0][0]
		e.CommonVarY += b.w[i] * f.Pc[1][1]
	}
	return e
}

// WanderSq is the mixture's wander density w² (1/s), and NoiseScale its
// factor on the measurement variances.
func (b *Bank) WanderSq() float64 {
	var q float64
	for i, m := range b.models {
		q += b.w[i] * m.f.WanderSq
	}
	return q
}

// NoiseScale is the mixture's factor on the measurement variances.
func (b *Bank) NoiseScale() float64 {
	var s float64
	for i, m := range b.models {
		s += b.w[i] * m.scale
	}
	return s
}

// each applies f to every model's filter.
func (b *Bank) each(f func(*Filter)) {
	for i := range b.models {
		f(&b.models[i].f)
	}
}
