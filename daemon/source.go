package daemon

import (
	"math"
	"time"

	"github.com/ntptool/ntptool/discipline"
	"github.com/ntptool/ntptool/ntpclient"
)

// source is the engine's state for one server.
type source struct {
	index             int
	name              string
	minPoll, maxPoll  int
	pollLog2          int
	iburst            bool
	sigmaY0           float64 // prior frequency uncertainty (s/s)
	reach             uint8
	nextPoll          time.Duration // monotonic
	outstanding       bool
	txReal            time.Time
	txMono            time.Duration
	buf               []byte
	requests          int
	pollSum           time.Duration
	last              *ntpclient.Response
	filter            *discipline.Filter
	lastU             float64 // filter time (s on the uncorrected clock)
	floor             float64 // lowest delay seen (s)
	meanExcess        float64 // running mean of delay − floor (s)
	meanR             float64 // running mean measurement variance
	samples, rejected int
	sinceChange       int // updates since the poll interval changed
}

// pollInterval is the current poll interval.
func (s *source) pollInterval() time.Duration {
	return time.Duration(math.Ldexp(float64(time.Second), s.pollLog2))
}

// inBurst reports whether the next request follows the iburst spacing:
// always for the first iburstMin requests, then while the frequency is
// still too uncertain for the minimum poll interval, up to iburstMax.
func (s *source) inBurst() bool {
	switch {
	case !s.iburst || s.requests >= iburstMax:
		return false
	case s.requests < iburstMin || s.filter == nil:
		return true
	}
	return s.filter.SigmaY()*math.Ldexp(1, s.minPoll) > burstTarget
}

// distance is the source's root distance beyond this hop: the server's
// root delay/2 + root dispersion.
func (s *source) distance() float64 {
	if s.last == nil {
		return 0
	}
	return (s.last.RootDelay/2 + s.last.RootDispersion).Seconds()
}

// addSample feeds one measurement z of the uncorrected clock's offset
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
func (s *source) addSample(sample ntpclient.Sample, u, z, wander float64) bool {
	if s.samples == 0 || sample.Delay < s.floor {
		s.floor = sample.Delay
	}
	s.samples++
	excess := sample.Delay - s.floor
	n := float64(min(s.samples, 64))
	s.meanExcess += (excess - s.meanExcess) / n
	scale := (n*s.meanExcess + priorWeight*s.floor/2) / (n + priorWeight)
	d := excess + 0.63*scale/math.Sqrt(n)
	r := (d*d + q0*q0) / 12
	s.meanR += (r - s.meanR) / n
	if s.filter == nil {
		// The first sample fixes the phase; its error is within delay/2.
		s.filter = discipline.NewFilter(z, sample.Delay/2+q0, 0, s.sigmaY0, wander)
		s.lastU = u
		return true
	}
	s.filter.Predict(u - s.lastU)
	s.lastU = u
	nu, sv := s.filter.Innovation(z, r)
	if nu*nu > gate*gate*sv && s.filter.Updates >= 2 {
		s.rejected++
		if s.rejected < maxRejected {
			return false
		}
		// Outliers in a row: the clock or the path changed, or the filter
		// was too sure of itself. Forget, take this sample, and listen
		// again at the fastest rate.
		s.filter.Inflate(nu * nu / sv)
		s.pollLog2 = s.minPoll
		s.sinceChange = 0
	}
	s.rejected = 0
	s.filter.Update(z, r)
	return true
}

// adaptPoll picks the poll interval from the model: the longest interval
// in [minpoll, maxpoll] whose predicted RMS phase error stays within twice
// that of the shortest, moving one step at a time. Until the frequency is
// known well the shortest interval is used.
func (s *source) adaptPoll(wander float64) {
	s.sinceChange++
	f := s.filter
	if f == nil || f.Updates < 4 {
		s.pollLog2 = s.minPoll
		return
	}
	q := wander * wander
	base := discipline.SteadyStateSigmaX(math.Ldexp(1, s.minPoll), s.meanR, q)
	want := s.minPoll
	for p := s.minPoll + 1; p <= s.maxPoll; p++ {
		if discipline.SteadyStateSigmaX(math.Ldexp(1, p), s.meanR, q) <= 2*base {
			want = p
		}
	}
	switch {
	case want > s.pollLog2 && s.sinceChange >= 2:
		s.pollLog2++
		s.sinceChange = 0
	case want < s.pollLog2:
		s.pollLog2 = want
		s.sinceChange = 0
	}
}
