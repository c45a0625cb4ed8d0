package ntpclient

import (
	"errors"
	"math"
	"math/rand/v2"
	"time"
)

// Protocol manners of a source.
const (
	// With iburst set, the first iburstMin requests go 2 s apart; then
	// the interval grows, doubling at most, as the caller's limit allows,
	// until it reaches the poll interval (see Request); at most
	// iburstMax requests go before it does.
	iburstMin      = 4
	iburstMax      = 12
	iburstInterval = 2 * time.Second
	// retryAfter is when a request without a reply is sent again.
	retryAfter = 2 * time.Second
	// maxDelay: a round trip longer than this is no measurement (chrony's
	// maxdelay default).
	maxDelay = 3.0
	// unreachableAfter polls without a reply make a source unreachable.
	unreachableAfter = 8
)

// SourceConfig configures a Source.
type SourceConfig struct {
	// Name is the server's name, for logs and status.
	Name string
	// MinPoll and MaxPoll bound the poll interval, log2 seconds.
	MinPoll, MaxPoll int
	// IBurst sends a burst of requests 2 s apart at start.
	IBurst bool
}

// Source is the wire side of one server for the engine: the exchange in
// flight (random transmit cookie, origin check, send and receive times),
// the reach register, the poll schedule (the interval is the caller's
// choice, within a KoD RATE's floor), one retry of a lost request, and
// the server's kiss codes. The estimation is the caller's (package
// estimator). A Source is owned by one goroutine.
type Source struct {
	cfg         SourceConfig
	pollLog2    int
	reach       uint8
	nextPoll    time.Duration // monotonic
	outstanding bool
	cookie      uint64        // transmit timestamp of the request in flight
	valid       bool          // the last reply was usable
	answered    bool          // a usable reply ever came
	dead        error         // a KoD DENY/RSTR: the server wants no more requests
	kodPoll     int           // a KoD RATE's floor for pollLog2
	retryAt     time.Duration // monotonic; 0: no retry planned
	stepped     bool          // the clock was stepped while a request was in flight
	txReal      time.Time
	txMono      time.Duration
	buf         []byte
	burst       time.Duration // the start-up interval in force; −1 once it reached the poll
	requests    int           // requests sent, retries included
	polls       int           // scheduled polls (requests less retries)
	firstPoll   time.Duration // monotonic time of the first poll
	pollMono    time.Duration // monotonic time of the last poll
	unanswered  int           // polls in a row without a usable reply
	last        *Response
	rng         *rand.Rand
}

// NewSource returns a source that polls once Start is called. rng draws
// the requests' transmit timestamps (see Request).
func NewSource(cfg SourceConfig, rng *rand.Rand) *Source {
	return &Source{cfg: cfg, pollLog2: cfg.MinPoll, nextPoll: math.MaxInt64, rng: rng}
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

// Polls counts the scheduled polls (requests less retries), and the
// monotonic time from the first to the last.
func (s *Source) Polls() (int, time.Duration) { return s.polls, s.pollMono - s.firstPoll }

// Last is the last valid reply, nil before one.
func (s *Source) Last() *Response { return s.last }

// Reach is the reach register: bit 0 is the latest request.
func (s *Source) Reach() uint8 { return s.reach }

// PollLog2 is the poll interval in force, log2 s.
func (s *Source) PollLog2() int { return s.pollLog2 }

// SetPollLog2 sets the poll interval from the next request on, within
// [minpoll, maxpoll] and at least a KoD RATE's floor.
func (s *Source) SetPollLog2(p int) {
	s.pollLog2 = max(min(p, s.cfg.MaxPoll), s.cfg.MinPoll, s.kodPoll)
}

// InRounds reports whether the source is polled at its poll interval:
// its start-up is over (or it has none), it has polled, and no KoD DENY
// or RSTR stopped it. Such a source's next poll may be brought forward
// (PollSooner) to go with the others'.
func (s *Source) InRounds() bool {
	return s.dead == nil && s.polls > 0 && (!s.cfg.IBurst || s.burst < 0)
}

// ScheduledPoll is the monotonic time of the next poll, a retry aside.
func (s *Source) ScheduledPoll() time.Duration { return s.nextPoll }

// PollInterval is the poll interval in force.
func (s *Source) PollInterval() time.Duration { return s.pollInterval() }

// PollSooner brings the next poll forward to monotonic time t; a later t
// changes nothing.
func (s *Source) PollSooner(t time.Duration) { s.nextPoll = min(s.nextPoll, t) }

// KoDFloorLog2 is the poll interval a KoD RATE demanded, log2 s (0 if
// none came).
func (s *Source) KoDFloorLog2() int { return s.kodPoll }

// Request starts an exchange at local time real (monotonic mono): it
// returns the packet to send and schedules the next request. With
// iburst, the first iburstMin requests go 2 s apart, and the next ones at
// the longest interval, doubling at most, within limit (how long the
// caller's frequency is good for: the clock must not drift far before the
// next sample) until that reaches the poll interval, after iburstMax
// requests at the latest: a start-up that tapers instead of stopping
// dead with a frequency learnt over a few seconds and then waiting a
// whole poll. An exchange still in flight counts as lost. A request lost at
// a long poll interval is retried once, retryAfter later, so that a lossy
// path does not leave the clock unmeasured for several polls (about one
// packet more per lost one). The packet's transmit timestamp is random,
// as beevik/ntp's is: the origin check then stops off-path spoofers, and
// the request does not reveal the local time; the local send time is
// kept here.
func (s *Source) Request(real time.Time, mono time.Duration, limit time.Duration) []byte {
	retry := s.outstanding && s.retryAt != 0 && mono >= s.retryAt && mono < s.nextPoll
	if s.outstanding {
		s.reach <<= 1
	}
	if !retry {
		if s.polls == 0 {
			s.firstPoll = mono
		}
		s.polls++
		s.pollMono = mono
		if s.requests > 0 && (s.outstanding || !s.valid) {
			s.unanswered++
		}
	}
	s.txReal, s.txMono, s.outstanding, s.stepped = real, mono, true, false
	s.cookie = s.rng.Uint64() | 1 // never the "unknown" zero
	s.buf = Request(s.buf, s.cookie)
	s.requests++
	s.retryAt = 0
	if retry {
		return s.buf
	}
	interval := s.startInterval(limit)
	s.nextPoll = mono + interval
	if interval >= 8*retryAfter {
		s.retryAt = mono + retryAfter
	}
	return s.buf
}

// Sent records when the request in flight left, as the transport saw it
// (the kernel's transmit timestamp): more exact than the reading before
// the send that Request keeps.
func (s *Source) Sent(real time.Time, mono time.Duration) {
	if s.outstanding {
		s.txReal, s.txMono = real, mono
	}
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
	return s.answered && s.valid && s.reach != 0 || !s.answered && firstUnderWay
}

// Unreachable reports whether the source has not answered usably for
// unreachableAfter polls in a row, or sent a KoD DENY or RSTR.
func (s *Source) Unreachable() bool {
	return s.dead != nil || s.unanswered >= unreachableAfter
}

// Dead is the KoD DENY or RSTR that stopped the polling, nil if none.
func (s *Source) Dead() error { return s.dead }

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
	s.answered = true
	s.unanswered = 0
	s.last = sample.Response
	return sample, s.txMono + (rxMono-s.txMono)/2, nil
}

// TxReal is the local time the request in flight (or the last one) was
// sent.
func (s *Source) TxReal() time.Time { return s.txReal }

// pollInterval is the current poll interval.
func (s *Source) pollInterval() time.Duration {
	return time.Duration(math.Ldexp(float64(time.Second), s.pollLog2))
}

// startInterval is the interval to the next request: the poll interval,
// or during an iburst's start-up the interval that Request describes.
func (s *Source) startInterval(limit time.Duration) time.Duration {
	poll := s.pollInterval()
	switch {
	case !s.cfg.IBurst || s.burst < 0:
		return poll
	case s.requests < iburstMin || !s.answered || s.burst == 0:
		s.burst = iburstInterval
	case s.requests >= iburstMax:
		s.burst = poll
	case 2*s.burst <= limit:
		s.burst *= 2 // at most a doubling per request
	}
	if s.burst >= poll {
		s.burst = -1 // the start-up is over
		return poll
	}
	return s.burst
}

// Distance is the source's root distance (s): half this hop's lowest
// round trip floorDelayS (the bound of the error path asymmetry can
// cause) plus the server's root delay/2 and root dispersion (RFC 5905
// section 11.2.1).
func (s *Source) Distance(floorDelayS float64) float64 {
	if s.last == nil {
		return 0
	}
	return floorDelayS/2 + (s.last.RootDelay/2 + s.last.RootDispersion).Seconds()
}
