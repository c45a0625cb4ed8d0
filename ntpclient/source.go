package ntpclient

import (
	"errors"
	"math"
	"math/rand/v2"
	"time"
)

// Tunables of a source. They describe noise and protocol manners, not a
// window to tune.
const (
	// q0 guards against trusting a zero-excess-delay sample absolutely (s).
	q0 = 5e-6
	// With iburst set, the first iburstMin requests go 2 s apart, and up
	// to iburstMax while the frequency is too uncertain for the first
	// regular poll interval (the phase would drift more than burstTarget).
	iburstMin      = 4
	iburstMax      = 8
	iburstInterval = 2 * time.Second
	burstTarget    = 250e-6
	// gate: innovations beyond gate standard deviations are outliers;
	// maxRejected of them in a row mean a change, not outliers.
	gate        = 4.0
	maxRejected = 3
	// priorWeight is how many pseudo-samples the prior on the delay
	// excess (half the lowest delay) is worth.
	priorWeight = 4.0
	// learning is how many updates the filter takes to trust its
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
	// retryAfter is when a request without a reply is sent again.
	retryAfter = 2 * time.Second
	// maxDelay: a round trip longer than this is no measurement (chrony's
	// maxdelay default).
	maxDelay = 3.0
)

// SourceConfig configures a Source.
type SourceConfig struct {
	// Name is the server's name, for logs and status.
	Name string
	// MinPoll and MaxPoll bound the poll interval, log2 seconds.
	MinPoll, MaxPoll int
	// IBurst sends a burst of requests 2 s apart at start.
	IBurst bool
	// SigmaY0 is the prior uncertainty of the clock's frequency (s/s):
	// the kernel's whole range without a drift file, the drift file's
	// error bound with one.
	SigmaY0 float64
	// Wander is the clock's random-walk frequency noise ((s/s)/√s).
	Wander float64
}

// Source is the client's state for one server: the exchange in flight, the
// reach register, the poll interval, and a bank of Kalman filters (Bank) of
// the local clock's phase and frequency against this server.
//
// Time on the filter's axis ("u") is the local clock without the
// corrections the daemon applied, in seconds from an epoch; the caller
// converts (see daemon.Engine). A Source is owned by one goroutine.
type Source struct {
	cfg         SourceConfig
	pollLog2    int
	reach       uint8
	nextPoll    time.Duration // monotonic
	outstanding bool
	cookie      uint64        // transmit timestamp of the request in flight
	valid       bool          // the last reply was usable
	dead        error         // a KoD DENY/RSTR: the server wants no more requests
	kodPoll     int           // a KoD RATE's floor for pollLog2
	retryAt     time.Duration // monotonic; 0: no retry planned
	stepped     bool          // the clock was stepped while a request was in flight
	txReal      time.Time
	txMono      time.Duration
	buf         []byte
	requests    int           // requests sent, retries included
	polls       int           // scheduled polls (requests less retries)
	pollMono    time.Duration // monotonic time of the last poll
	pollSum     time.Duration // sum of the intervals between polls
	last        *Response
	filter      *Filter // the bank's best model
	bank        *Bank
	lastU       float64 // filter time of the state
	floor       float64 // lowest delay seen (s)
	meanExcess  float64 // running mean of delay − floor (s)
	meanR       float64 // running mean measurement variance (s²)
	samples     int
	rejected    int
	sinceChange int // updates since the poll interval changed
	// What the measurement noise turned out to be, learnt from the
	// innovations.
	rScale   float64 // factor on the delay-derived variances
	nis      float64 // running mean of the normalised innovation squared
	corr     float64 // running lag-1 correlation of normalised innovations
	prevNorm float64
	alpha    float64 // path asymmetry: error per second of excess delay
	rng      *rand.Rand
}

// NewSource returns a source that polls once Start is called. rng draws
// the requests' transmit timestamps (see Request).
func NewSource(cfg SourceConfig, rng *rand.Rand) *Source {
	return &Source{
		cfg: cfg, pollLog2: cfg.MinPoll, nextPoll: math.MaxInt64,
		rScale: 1, nis: 1, rng: rng,
	}
}

// Start schedules the first request at monotonic time now.
func (s *Source) Start(now time.Duration) { s.nextPoll = now }

// Name is the configured server name.
func (s *Source) Name() string { return s.cfg.Name }

// NextPoll is the monotonic time of the next request (a retry of a lost
// one, or the next poll); never for a source that sent a KoD DENY or RSTR.
func (s *Source) NextPoll() time.Duration {
	if s.dead != nil {
		return math.MaxInt64
	}
	if s.outstanding && s.retryAt != 0 {
		return min(s.nextPoll, s.retryAt)
	}
	return s.nextPoll
}

// Polls counts the scheduled polls (requests less retries), and PollSum
// sums the intervals between them.
func (s *Source) Polls() (int, time.Duration) { return s.polls, s.pollSum }

// Last is the last valid reply, nil before one.
func (s *Source) Last() *Response { return s.last }

// Request starts an exchange at local time real (monotonic mono): it
// returns the packet to send and schedules the next request. An exchange
// still in flight counts as lost. A request lost at a long poll interval
// is retried once, retryAfter later, so that a lossy path does not leave
// the clock unmeasured for several polls (about one packet more per lost
// one). The packet's transmit timestamp is random, as beevik/ntp's is: the
// origin check then stops off-path spoofers, and the request does not
// reveal the local time; the local send time is kept here.
func (s *Source) Request(real time.Time, mono time.Duration) []byte {
	retry := s.outstanding && s.retryAt != 0 && mono >= s.retryAt && mono < s.nextPoll
	if s.outstanding {
		s.reach <<= 1
	}
	if s.polls > 0 && !retry {
		s.pollSum += mono - s.pollMono
	}
	if !retry {
		s.polls++
		s.pollMono = mono
	}
	s.txReal, s.txMono, s.outstanding, s.stepped = real, mono, true, false
	s.cookie = s.rng.Uint64() | 1 // never the "unknown" zero
	s.buf = Request(s.buf, s.cookie)
	s.requests++
	s.retryAt = 0
	if retry {
		return s.buf
	}
	interval := s.pollInterval()
	if s.inBurst() {
		interval = iburstInterval
	}
	s.nextPoll = mono + interval
	if interval >= 8*retryAfter {
		s.retryAt = mono + retryAfter
	}
	return s.buf
}

// Stepped tells the source the clock was stepped: an exchange in flight
// is void.
func (s *Source) Stepped() { s.stepped = s.outstanding }

// Voting reports whether the source takes part in the majority: its last
// reply was usable and it still answers, or its first exchange is still
// under way. A source that never answers, stopped answering, answers
// unsynchronised or sent a KoD is left out, so that it cannot block the
// others (nor join every clique with an interval widened by age).
func (s *Source) Voting() bool {
	if s.dead != nil {
		return false
	}
	firstUnderWay := s.requests == 0 || s.requests == 1 && s.outstanding
	return s.filter != nil && s.valid && s.reach != 0 || s.filter == nil && firstUnderWay
}

// Reply checks a packet received at rxReal (the kernel's receive
// timestamp, local clock) and rxMono. It returns the sample and the
// monotonic time of the middle of the exchange, or why the packet is not
// usable. A KoD RATE lengthens the poll interval.
func (s *Source) Reply(pkt []byte, rxReal time.Time, rxMono time.Duration) (Sample, time.Duration, error) {
	if !s.outstanding {
		return Sample{}, 0, ErrNotOurs
	}
	sample, err := ParseReply(pkt, s.cookie, s.txReal, rxReal)
	if errors.Is(err, ErrOriginMismatch) || errors.Is(err, ErrMalformed) {
		return Sample{}, 0, ErrNotOurs
	}
	s.outstanding = false
	s.reach = s.reach<<1 | 1
	switch {
	case err != nil:
	case s.stepped:
		err = ErrStepped
	case sample.DelayS > maxDelay:
		err = ErrDelay
	}
	s.valid = err == nil
	var kod *KissError
	if errors.As(err, &kod) {
		switch kod.Code {
		case "RATE":
			// Slow down, and stay slower (RFC 5905 section 7.4).
			s.kodPoll = min(max(s.kodPoll, s.pollLog2)+1, s.cfg.MaxPoll)
			s.pollLog2 = max(s.pollLog2, s.kodPoll)
		case "DENY", "RSTR":
			// The server wants no more requests from us.
			s.dead = err
		}
	}
	if err != nil {
		return sample, 0, err
	}
	return sample, s.txMono + (rxMono-s.txMono)/2, nil
}

// TxReal is the local time the request in flight (or the last one) was
// sent.
func (s *Source) TxReal() time.Time { return s.txReal }

// pollInterval is the current poll interval.
func (s *Source) pollInterval() time.Duration {
	return time.Duration(math.Ldexp(float64(time.Second), s.pollLog2))
}

// inBurst reports whether the next request follows the iburst spacing:
// always for the first iburstMin requests, then while the frequency is
// still too uncertain for the minimum poll interval, up to iburstMax.
func (s *Source) inBurst() bool {
	switch {
	case !s.cfg.IBurst || s.requests >= iburstMax:
		return false
	case s.requests < iburstMin || s.filter == nil:
		return true
	}
	return s.filter.SigmaY()*math.Ldexp(1, s.cfg.MinPoll) > burstTarget
}

// Distance is the source's root distance (s): half this hop's lowest
// round trip (the bound of the error path asymmetry can cause) plus the
// server's root delay/2 and root dispersion (RFC 5905 section 11.2.1).
func (s *Source) Distance() float64 {
	if s.last == nil {
		return 0
	}
	return s.floor/2 + (s.last.RootDelay/2 + s.last.RootDispersion).Seconds()
}

// AddSample feeds one measurement z of the uncorrected clock's offset
// (local − server) taken at filter time u. It returns false for an
// outlier.
//
// The variance of a sample comes from its delay: with d the excess of its
// round trip over the path's fastest one, the error is within ±d/2 and,
// for exponential queueing, roughly uniform there, so Var = d²/12. The
// fastest round trip is only known as the lowest delay seen so far, which
// overstates it by about 0.63·E[excess]/√n after n samples (the minimum of
// n Gamma(2) excesses); that is added to each excess. Until samples come
// in, the mean excess is assumed to be half the lowest delay (priorWeight
// pseudo-samples), so that two alike early samples are not taken as exact.
func (s *Source) AddSample(sample Sample, u, z float64) bool {
	if s.samples == 0 || sample.DelayS < s.floor {
		if s.samples > 0 {
			// Excesses were measured from the old floor: rebase them.
			s.meanExcess += s.floor - sample.DelayS
		}
		s.floor = sample.DelayS
	}
	s.samples++
	excess := sample.DelayS - s.floor
	n := float64(min(s.samples, 64))
	s.meanExcess += (excess - s.meanExcess) / n
	scale := (n*s.meanExcess + priorWeight*s.floor/2) / (n + priorWeight)
	d := excess + 0.63*scale/math.Sqrt(n)
	r := s.rScale * (d*d + q0*q0) / 12
	s.meanR += (r - s.meanR) / n
	if s.filter == nil {
		// The first sample fixes the phase; its error is within delay/2.
		s.bank = NewBank(z, sample.DelayS/2+q0, 0, s.cfg.SigmaY0, wanderModels(s.cfg.Wander))
		s.filter = s.bank.Best()
		s.lastU = u
		s.last = sample.Response
		return true
	}
	s.advance(u)
	// Path asymmetry makes a sample's error grow with its excess delay:
	// correct it to what the fastest exchange would have measured.
	z -= s.alpha * excess
	nu, sv := s.filter.Innovation(z, r)
	switch outlier := nu*nu > gate*gate*sv; {
	case !outlier || s.filter.Updates < 2:
		// Too early to call anything an outlier.
	case s.filter.Updates < learning && nu*nu > wrongPrior*wrongPrior*sv:
		// Still learning, and far off: the frequency prior (a stale drift
		// file, say) was wrong, not the sample. Forget the frequency and
		// take it.
		s.bank.each(func(f *Filter) { f.ResetFrequency(resetSigmaY) })
	default:
		s.rejected++
		if s.rejected < maxRejected {
			return false
		}
		// Outliers in a row: the clock or the path changed, or the filter
		// was too sure of itself. Forget, take this sample, and listen
		// again at the fastest rate.
		s.bank.each(func(f *Filter) { f.Inflate(nu * nu / sv) })
		s.pollLog2 = max(s.cfg.MinPoll, s.kodPoll)
		s.sinceChange = 0
	}
	s.rejected = 0
	s.bank.Update(z, r)
	s.filter = s.bank.Best()
	s.learnNoise(nu, sv)
	s.learnAsymmetry(nu, excess)
	s.last = sample.Response
	return true
}

// learnAsymmetry follows the slope of the innovations against the excess
// delay (least mean squares): with one direction of the path noisier than
// the other, E[error | excess] ≈ α·excess, α in [−½, ½] (chrony estimates
// the same slope by regression). The slope is learnt slowly and only
// once the filter has settled, so that on a symmetric path it stays near
// zero.
func (s *Source) learnAsymmetry(nu, excess float64) {
	if s.filter.Updates < learning {
		return
	}
	scale := math.Max(s.meanExcess, q0)
	s.alpha += asymGain * nu * excess / (excess*excess + scale*scale)
	s.alpha = math.Max(-0.5, math.Min(0.5, s.alpha))
}

// Bounds of what learnNoise may conclude.
const (
	maxRScale   = 100
	noiseMemory = 64 // updates the running means remember
)

// wanderModels are the wander hypotheses of a source's filter bank: the
// prior first, then a decade below and up to two and a half above, in
// half-decade steps (a quartz in a steady room to a VM's clock).
func wanderModels(prior float64) []float64 {
	ws := []float64{prior}
	for _, k := range []float64{-1, -0.5, 0.5, 1, 1.5, 2, 2.5} {
		ws = append(ws, prior*math.Pow(10, k))
	}
	return ws
}

// learnNoise checks the measurement noise against the innovations
// (measurement minus prediction, over its predicted deviation), which a
// right model makes white with unit variance. Innovations larger than
// predicted but white mean the samples are noisier than their delays say:
// their variances are scaled up, and back down slowly when the innovations
// are clearly smaller than predicted. (Innovations that run together mean
// a wander the bank's models answer.)
func (s *Source) learnNoise(nu, sv float64) {
	norm := nu / math.Sqrt(sv)
	s.nis += (norm*norm - s.nis) / noiseMemory
	s.corr += (norm*s.prevNorm - s.corr) / noiseMemory
	s.prevNorm = norm
	if s.filter.Updates < learning {
		return
	}
	switch {
	case s.corr <= 0.3 && s.nis > 1.5:
		s.rScale = math.Min(s.rScale*1.2, maxRScale)
	case s.nis < 0.6:
		s.rScale = math.Max(s.rScale/1.1, 1)
	}
}

// Estimate is a source's filtered phase and frequency, predicted to a
// filter time, with their variances.
type Estimate struct {
	// X is the uncorrected clock's offset against the source (s), and
	// VarX its variance.
	X, VarX float64
	// Y is its frequency error (s/s), and VarY its variance.
	Y, VarY float64
}

// Predict advances the filter to filter time u and returns the estimate;
// ok is false before the first sample.
func (s *Source) Predict(u float64) (est Estimate, ok bool) {
	if s.filter == nil {
		return Estimate{}, false
	}
	s.advance(u)
	return s.estimate(s.filter), true
}

// advance predicts the filters forward to u; never backwards (a reply from
// the middle of an exchange may be older than the last prediction, by less
// than a round trip).
func (s *Source) advance(u float64) {
	if h := u - s.lastU; h > 0 {
		s.bank.Predict(h)
		s.lastU = u
	}
}

// Peek is Predict without changing the state, for status reports.
func (s *Source) Peek(u float64) (est Estimate, ok bool) {
	if s.filter == nil {
		return Estimate{}, false
	}
	f := *s.filter
	f.Predict(max(u-s.lastU, 0))
	return s.estimate(&f), true
}

func (s *Source) estimate(f *Filter) Estimate {
	return Estimate{X: f.X, VarX: f.P[0][0], Y: f.Y, VarY: f.P[1][1]}
}

// AddFrequency tells the filter of a frequency correction dy (s/s) the
// daemon applied to the clock.
func (s *Source) AddFrequency(dy float64) {
	if s.bank != nil {
		s.bank.each(func(f *Filter) { f.AddFrequency(dy) })
	}
}

// SigmaY is the standard deviation of the frequency estimate (s/s); +Inf
// before the first sample.
func (s *Source) SigmaY() float64 {
	if s.filter == nil {
		return math.Inf(1)
	}
	return s.filter.SigmaY()
}

// AdaptPoll picks the poll interval from the model: the longest interval
// P in [minpoll, maxpoll] whose predicted RMS phase error stays within
// twice that of the shortest, and over which the filter still averages
// enough samples: its time constant τ(P) = (R·P/w²)^¼ must span
// minSamples/2 polls (DISCIPLINE-NOTES: the best window is about 2τ), and
// over which the frequency's uncertainty moves the phase by at most
// driftPerPoll. The first rule trades packets for accuracy; the second
// shortens the poll when the wander or the noise says so; the third holds
// it short while the frequency is learnt. It moves up one step at a time,
// down at once. Until the frequency is known well, minpoll is used.
func (s *Source) AdaptPoll() {
	s.sinceChange++
	f := s.filter
	if f == nil || f.Updates < 4 {
		s.pollLog2 = max(s.cfg.MinPoll, s.kodPoll)
		return
	}
	q := f.WanderSq
	base := SteadyStateSigmaX(math.Ldexp(1, s.cfg.MinPoll), s.meanR, q)
	want := s.cfg.MinPoll
	for p := s.cfg.MinPoll + 1; p <= s.cfg.MaxPoll; p++ {
		poll := math.Ldexp(1, p)
		tau := math.Pow(s.meanR*poll/q, 0.25)
		// While the frequency is still being learnt, its error must not
		// carry the phase far between two polls either.
		if SteadyStateSigmaX(poll, s.meanR, q) <= 2*base && 2*tau/poll >= minSamples && f.SigmaY()*poll <= driftPerPoll {
			want = p
		}
	}
	want = max(want, s.kodPoll)
	switch {
	case want > s.pollLog2 && s.sinceChange >= 2:
		s.pollLog2++
		s.sinceChange = 0
	case want < s.pollLog2:
		s.pollLog2 = want
		s.sinceChange = 0
	}
}

// SourceStatus is one source's state, for status reports.
type SourceStatus struct {
	// Name is the configured server name.
	Name string
	// Reach is the reach register: bit 0 is the latest request.
	Reach uint8
	// PollLog2 is the current poll interval, log2 seconds.
	PollLog2 int
	// OffsetS is the estimated offset of the clock against this source
	// (local − source, s), and SigmaS its standard deviation; 0 before a
	// sample.
	OffsetS, SigmaS float64
	// FloorDelayS is the lowest round-trip delay seen.
	FloorDelayS float64
	// Stratum is the source's stratum in its last valid reply.
	Stratum int
}

// Status reports the source's state with its estimate predicted to filter
// time u; applied is the phase the daemon applied to the clock by then, to
// report the offset of the real clock.
func (s *Source) Status(u, applied float64) SourceStatus {
	st := SourceStatus{Name: s.cfg.Name, Reach: s.reach, PollLog2: s.pollLog2, FloorDelayS: s.floor}
	if s.last != nil {
		st.Stratum = s.last.Stratum
	}
	if est, ok := s.Peek(u); ok {
		st.OffsetS, st.SigmaS = est.X+applied, math.Sqrt(est.VarX)
	}
	return st
}
