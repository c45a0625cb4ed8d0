package estimator

import (
	"math"
)

// Tunables of an estimator. They describe noise, not a window to tune.
const (
	// q0 guards against trusting a zero-excess-delay sample absolutely (s).
	q0 = 5e-6
	// gate: innovations beyond gate standard deviations are outliers;
	// maxRejected of them in a row mean a change, not outliers.
	gate        = 4.0
	maxRejected = 3
	// priorWeight is how many pseudo-samples the prior on the delay
	// excess (half the lowest delay) is worth.
	priorWeight = 4.0
	// floorBias: the lowest of n delays overstates the path's floor by
	// floorBias·E[excess]/√n (see Add).
	floorBias = 0.63
	// learning is how many updates the estimator takes to trust its
	// frequency; before that an outlier resets the frequency to
	// resetSigmaY (the kernel's whole range) instead of being dropped.
	learning    = 8
	wrongPrior  = 10.0 // standard deviations
	resetSigmaY = 500e-6
	// driftPerPoll bounds how far the frequency's uncertainty may carry
	// the phase over one poll interval (s).
	driftPerPoll = 100e-6
	// asymGain is the step of the asymmetry's least-mean-squares fit.
	asymGain = 0.02
	// minSamples is how many polls the filter's averaging window (2τ)
	// must span at the chosen poll interval.
	minSamples = 8
	// excessMemory is how many samples the running means of the delay
	// excess and the measurement variance remember.
	excessMemory = 64
)

// Config configures an Estimator.
type Config struct {
	// SigmaY0 is the prior uncertainty of the clock's frequency (s/s):
	// the kernel's whole range without a drift file, the drift file's
	// error bound with one.
	SigmaY0 float64
	// Wander is the prior for the clock's random-walk frequency noise
	// ((s/s)/√s). Default 1e-9, a typical undisciplined quartz.
	Wander float64
	// MinPoll and MaxPoll bound the poll interval AdaptPoll picks, log2 s.
	MinPoll, MaxPoll int
}

// Verdict is what Add did with a measurement.
type Verdict int

// Verdicts.
const (
	// Accepted: the measurement updated the estimate.
	Accepted Verdict = iota
	// Outlier: the measurement was dropped.
	Outlier
	// Changed: outliers in a row; the estimator took this one as the
	// start of a change (of the clock, the path or the server), forgot
	// much of what it knew and listens at the shortest poll again.
	Changed
)

// Estimate is a source's filtered phase and frequency, predicted to a
// filter time, with their variances.
type Estimate struct {
	// X is the uncorrected clock's offset against the source (s), and
	// VarX its variance.
	X, VarX float64
	// Y is its frequency error (s/s), and VarY its variance.
	Y, VarY float64
	// CommonVarX and CommonVarY are the parts of VarX and VarY that come
	// from the clock itself (its wander, its frequency before the first
	// measurement), shared by every source's estimate of the same clock;
	// the rest comes from this source's measurements alone.
	CommonVarX, CommonVarY float64
	// CovXY is the covariance of X and Y, and WanderSq the wander density
	// (1/s) the estimate believes in: with them it can be predicted ahead
	// (see Predict).
	CovXY, WanderSq float64
}

// Predict returns the estimate h seconds ahead: the phase moves by the
// frequency, its variance grows by the frequency's uncertainty and the
// wander (Var[x + y·h] + q·h³/3), and the frequency's by q·h; the wander's
// part is common to the sources.
func (est Estimate) Predict(h float64) Estimate {
	if h <= 0 {
		return est
	}
	q := est.WanderSq
	w := q * h * h * h / 3
	est.X += est.Y * h
	est.VarX += 2*h*est.CovXY + h*h*est.VarY + w
	est.CommonVarX += h*h*est.CommonVarY + w
	est.CovXY += h*est.VarY + q*h*h/2
	est.VarY += q * h
	est.CommonVarY += q * h
	return est
}

// Estimator is the per-source estimation of the local clock against one
// server: a bank of Kalman filters over hypotheses of the clock's wander
// and the path's noise (Bank), the measurement variances from the delays,
// the path's asymmetry, outlier rejection and the choice of the poll
// interval. It is pure: time is the caller's filter axis u, in seconds.
//
// Time on the filter's axis ("u") is the local clock without the
// corrections the daemon applied, in seconds from an epoch; the caller
// converts (see daemon.Engine).
type Estimator struct {
	cfg         Config
	bank        *Bank
	lastU       float64 // filter time of the state
	updateU     float64 // filter time of the last accepted measurement
	meanNu2     float64 // running mean of the squared innovations (s²)
	lastZ       float64 // that measurement, corrected for asymmetry
	lastR       float64 // and its variance, with the noise scale
	floor       float64 // lowest delay seen (s)
	meanExcess  float64 // running mean of delay − floor (s)
	meanR       float64 // running mean measurement variance (s²)
	samples     int     // measurements seen
	updates     int     // measurements accepted
	rejected    int     // outliers in a row
	alpha       float64 // path asymmetry: error per second of excess delay
	pollLog2    int
	sinceChange int // updates since the poll interval changed
}

// New returns an estimator without a measurement.
func New(cfg Config) *Estimator {
	if cfg.Wander <= 0 {
		cfg.Wander = 1e-9
	}
	return &Estimator{cfg: cfg, pollLog2: cfg.MinPoll}
}

// hypotheses are the models of an estimator's bank: the wander prior and
// up to two and a half decades above, in half-decade steps (a quartz in a
// steady room to a VM's clock); each with the delays explaining the noise,
// or the path noisier than that by 3, 10 or 30 times in variance (a
// server's own timestamping noise, a path whose queues are not
// exponential). None below the prior: a wander too small makes a filter
// too sure of itself, which rejects the samples that would correct it and
// follows the clock's moves late (the rare 100–200 µs excursions of a
// bank that could pick a decade below), while one too large only costs a
// little noise.
func hypotheses(prior float64) []Hypothesis {
	var hs []Hypothesis
	for _, k := range []float64{0, 0.5, 1, 1.5, 2, 2.5} {
		for j, s := range []float64{1, 3, 10, 30} {
			hs = append(hs, Hypothesis{Wander: prior * math.Pow(10, k), NoiseScale: s, LogPrior: -float64(j)})
		}
	}
	return hs
}

// Ready reports whether the estimator has a measurement.
func (e *Estimator) Ready() bool { return e.bank != nil }

// Updates counts the accepted measurements.
func (e *Estimator) Updates() int { return e.updates }

// FloorDelay is the lowest round-trip delay seen (s).
func (e *Estimator) FloorDelay() float64 { return e.floor }

// Add feeds one measurement z of the uncorrected clock's offset (local −
// server, s) taken at filter time u with round-trip delay delayS.
//
// The variance of a sample comes from its delay: with d the excess of its
// round trip over the path's fastest one, the error is within ±d/2 and,
// for exponential queueing, roughly uniform there, so Var = d²/12. The
// fastest round trip is only known as the lowest delay seen so far, which
// overstates it by about m = 0.63·E[excess]/√n after n samples (the
// minimum of n Gamma(2) excesses, a Rayleigh tail); that is added to each
// excess. The excesses measured above the lowest delay are short by m
// too, so with their mean x̄, m = 0.63·(x̄ + m)/√n, m = 0.63·x̄/(√n −
// 0.63): without the correction the first dozen samples, whose floor is
// the least known, were trusted half again too much (a frequency after an
// iburst off by 4–6 of its σ in 1 seed of 400). Until samples come in,
// the mean excess is assumed to be half the lowest delay (priorWeight
// pseudo-samples), so that two alike early samples are not taken as exact.
func (e *Estimator) Add(u, z, delayS float64) Verdict {
	if e.samples == 0 || delayS < e.floor {
		if e.samples > 0 {
			// Excesses were measured from the old floor: rebase them.
			e.meanExcess += e.floor - delayS
		}
		e.floor = delayS
	}
	e.samples++
	excess := delayS - e.floor
	n := float64(min(e.samples, excessMemory))
	e.meanExcess += (excess - e.meanExcess) / n
	scale := (n*e.meanExcess + priorWeight*e.floor/2) / (n + priorWeight)
	d := excess + floorBias*scale/(math.Sqrt(n)-floorBias)
	r := (d*d + q0*q0) / 12
	e.meanR += (r - e.meanR) / n
	if e.bank == nil {
		// The first sample fixes the phase; its error is within delay/2.
		e.bank = NewBank(z, delayS/2+q0, 0, e.cfg.SigmaY0, hypotheses(e.cfg.Wander))
		e.lastU, e.updateU = u, u
		e.updates++
		e.lastZ, e.lastR = z, r
		return Accepted
	}
	e.advance(u)
	// Path asymmetry makes a sample's error grow with its excess delay:
	// correct it to what the fastest exchange would have measured.
	z -= e.alpha * excess
	nu, sv := e.bank.Innovation(z, r)
	verdict := Accepted
	switch outlier := !e.bank.Explains(z, r, gate); {
	case e.updates < learning && nu*nu > wrongPrior*wrongPrior*sv:
		// Still learning, and far off: the frequency prior (a stale drift
		// file, say) was wrong, not the sample. Forget the frequency and
		// take it.
		h := u - e.updateU
		e.bank.each(func(f *Filter) { f.ResetFrequency(resetSigmaY, h) })
	case !outlier || e.updates < 3:
		// Too early to call anything an outlier.
	default:
		e.rejected++
		if e.rejected < maxRejected {
			return Outlier
		}
		// Outliers in a row: the clock or the path changed, or the filter
		// was too sure of itself. Forget, take this sample, and listen
		// again at the fastest rate.
		k := nu * nu / sv
		e.bank.each(func(f *Filter) { f.Inflate(k) })
		e.pollLog2 = e.cfg.MinPoll
		e.sinceChange = 0
		verdict = Changed
	}
	e.rejected = 0
	e.meanNu2 += (nu*nu - e.meanNu2) / float64(min(e.updates, excessMemory))
	e.bank.Update(z, r)
	e.updates++
	e.updateU = u
	e.lastZ, e.lastR = z, r*e.bank.NoiseScale()
	e.learnAsymmetry(nu, excess)
	return verdict
}

// learnAsymmetry follows the slope of the innovations against the excess
// delay (least mean squares): with one direction of the path noisier than
// the other, E[error | excess] ≈ α·excess, α in [−½, ½] (chrony estimates
// the same slope by regression). The slope is learnt slowly and only
// once the filter has settled, so that on a symmetric path it stays near
// zero.
func (e *Estimator) learnAsymmetry(nu, excess float64) {
	if e.updates < learning {
		return
	}
	scale := math.Max(e.meanExcess, q0)
	e.alpha += asymGain * nu * excess / (excess*excess + scale*scale)
	e.alpha = math.Max(-0.5, math.Min(0.5, e.alpha))
}

// Predict advances the estimate to filter time u and returns it; ok is
// false before the first measurement.
func (e *Estimator) Predict(u float64) (est Estimate, ok bool) {
	if e.bank == nil {
		return Estimate{}, false
	}
	e.advance(u)
	return e.bank.Estimate(), true
}

// advance predicts the filters forward to u; never backwards (a reply from
// the middle of an exchange may be older than the last prediction, by less
// than a round trip).
func (e *Estimator) advance(u float64) {
	if h := u - e.lastU; h > 0 {
		e.bank.Predict(h)
		e.lastU = u
	}
}

// Peek is Predict without changing the state, for status reports.
func (e *Estimator) Peek(u float64) (est Estimate, ok bool) {
	if e.bank == nil {
		return Estimate{}, false
	}
	return e.bank.Peek(max(u-e.lastU, 0)), true
}

// AddFrequency tells the estimator of a frequency correction dy (s/s) the
// daemon applied to the clock at filter time u.
func (e *Estimator) AddFrequency(u, dy float64) {
	if e.bank != nil {
		e.advance(u)
		e.bank.each(func(f *Filter) { f.AddFrequency(dy) })
	}
}

// LastMeasurement is the last accepted measurement as the filters took it
// (corrected for the path's asymmetry) and its variance (scaled as the
// noise hypotheses weigh it), for a Tracker.
func (e *Estimator) LastMeasurement() (z, r float64) { return e.lastZ, e.lastR }

// Jitter is the RMS of the recent innovations (measurement − prediction,
// s): how much the source's samples scatter about what was expected (the
// jitter chronyc and ntpq show).
func (e *Estimator) Jitter() float64 { return math.Sqrt(e.meanNu2) }

// Wander is the clock's random-walk frequency noise the estimator
// believes in ((s/s)/√s); 0 before the first measurement.
func (e *Estimator) Wander() float64 {
	if e.bank == nil {
		return 0
	}
	return math.Sqrt(e.bank.WanderSq())
}

// SigmaY is the standard deviation of the frequency estimate (s/s); +Inf
// before the first measurement.
func (e *Estimator) SigmaY() float64 {
	if e.bank == nil {
		return math.Inf(1)
	}
	return math.Sqrt(e.bank.Estimate().VarY)
}

// PollLog2 is the poll interval AdaptPoll chose, log2 s.
func (e *Estimator) PollLog2() int { return e.pollLog2 }

// AdaptPoll picks the poll interval from the model, at least floorLog2
// (a KoD RATE's demand): the longest interval P in [minpoll, maxpoll]
// whose predicted RMS phase error stays within twice that of the
// shortest, and over which the filter still averages enough samples: its
// time constant τ(P) = (R·P/w²)^¼ must span minSamples/2 polls
// (DISCIPLINE-NOTES: the best window is about 2τ), and over which the
// frequency's uncertainty moves the phase by at most driftPerPoll. The
// first rule trades packets for accuracy; the second shortens the poll
// when the wander or the noise says so; the third holds it short while
// the frequency is learnt. It moves up one step at a time, down at once.
// Until the frequency is known well, minpoll is used.
func (e *Estimator) AdaptPoll(floorLog2 int) int {
	e.sinceChange++
	if e.bank == nil || e.updates < 5 {
		e.pollLog2 = max(e.cfg.MinPoll, floorLog2)
		return e.pollLog2
	}
	q := e.bank.WanderSq()
	r := e.meanR * e.bank.NoiseScale()
	sigmaY := e.SigmaY()
	want := max(longestPoll(e.cfg.MinPoll, e.cfg.MaxPoll, r, q, sigmaY), floorLog2)
	switch {
	case want > e.pollLog2 && e.sinceChange >= 2:
		e.pollLog2++
		e.sinceChange = 0
	case want < e.pollLog2:
		e.pollLog2 = want
		e.sinceChange = 0
	}
	return e.pollLog2
}

// longestPoll is AdaptPoll's choice before its floor and its one step at a
// time: the longest interval in (minPoll, maxPoll] that passes all three
// rules, else minPoll. It searches from the longest down, and computes the
// steady-state error (an iteration, most of an update's CPU time once)
// only for intervals that pass the two cheap rules.
func longestPoll(minPoll, maxPoll int, r, q, sigmaY float64) int {
	var base float64
	haveBase := false
	for p := maxPoll; p > minPoll; p-- {
		poll := math.Ldexp(1, p)
		tau := math.Pow(r*poll/q, 0.25)
		if !(2*tau/poll >= minSamples && sigmaY*poll <= driftPerPoll) {
			continue
		}
		if !haveBase {
			base, haveBase = SteadyStateSigmaX(math.Ldexp(1, minPoll), r, q), true
		}
		if SteadyStateSigmaX(poll, r, q) <= 2*base {
			return p
		}
	}
	return minPoll
}
