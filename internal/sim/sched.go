package sim

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// ErrUnknownServer is returned by Send for a server index the scenario does
// not have.
var ErrUnknownServer = errors.New("unknown simulated server")

// ServerConfig describes one simulated NTP server: a perfect clock plus a
// constant offset, answering every client request instantly.
type ServerConfig struct {
	// Offset is the server's clock − true time (positive: ahead); a
	// falseticker has a large one. Default 0.
	Offset time.Duration
	// Stratum is the stratum in replies. Default (0) 1.
	Stratum uint8
	// RefID is the reference ID in replies. Default (zero) "SIM".
	RefID [4]byte
	// PrecisionLog2 is the precision in replies, log2 seconds. Default (0)
	// −20, about 1 µs.
	PrecisionLog2 int8
	// Leap is the leap indicator in replies (0 none, 1 insert, 2 delete,
	// 3 unsynchronised). Default 0.
	Leap uint8
	// RootDelay and RootDispersion are sent as they are. Default 0.
	RootDelay, RootDispersion time.Duration
	// Link is the path between the client and this server.
	Link LinkConfig
}

// Config describes a scenario: one client and its servers.
type Config struct {
	// Seed is the srandom() seed of the noise (see NewNoise).
	Seed uint32
	// Clock is the client's clock.
	Clock ClockConfig
	// Servers are the servers the client can query, by index.
	Servers []ServerConfig
	// Metrics sets the metrics window; Sources is filled in from Servers.
	Metrics RecorderConfig
	// Leap, when not nil, puts a UTC leap second in the run.
	Leap *LeapSecond
}

// LeapSecond is a UTC leap second: the servers announce it in their
// replies from Announce until At, and their clocks, which keep UTC as Unix
// time does, repeat a second at At (insert) or skip one (delete). The true
// time scale T stays uniform, so after an inserted leap a client that
// follows UTC has an offset of −1 s against T.
type LeapSecond struct {
	// At is the true time of the UTC midnight at which the leap happens
	// (a deleted second is the one before it).
	At time.Duration
	// Announce is when the servers start announcing it (typically hours
	// or a day before).
	Announce time.Duration
	// Delete makes it a deleted second; the default inserts one.
	Delete bool
}

// Receiver is called when a reply reaches the client: server is the index
// of the server that sent it, pkt the NTP packet (the receiver may keep
// it), rxRealtime and rxMonotonic the client's clocks at delivery, as kernel
// RX timestamps. daemon.Engine.Receive has this signature.
type Receiver func(server int, pkt []byte, rxRealtime time.Time, rxMonotonic time.Duration)

// Sim is a deterministic discrete-event simulation of one client host (a
// Kernel), its servers and the network between them. True time T jumps
// from event to event and stops at every whole second, where the kernel
// does its per-second update and the metrics take a sample (before the
// events due at that second run). Events at the same instant run in the
// order they were scheduled. The kernel is advanced to an event's time
// before the event runs, so the engine reads the clock at that instant.
//
// A Sim is driven from one goroutine: RunUntil calls the events, and the
// events may call At, AtMonotonic, Send and the client Kernel, but not
// RunUntil.
type Sim struct {
	now     time.Duration
	client  *Kernel
	epochNS int64
	servers []ServerConfig
	leap    *LeapSecond
	links   []*Link
	rec     *Recorder
	recv    Receiver
	// onSample sees every sample.
	onSample func(Sample)

	seq     uint64
	events  timerHeap // keyed by true time
	timers  timerHeap // keyed by the client's monotonic time
	polls   int64
	running bool
	started bool

	// Per server: down (requests dropped), and the requests it got, for
	// the mean poll interval.
	down     []bool
	requests []serverRequests
	// estimate, when not nil, reports the engine's estimate of the
	// client's offset for the samples.
	estimate func() (offsetS, sigmaS float64, ok bool)
}

// serverRequests counts one server's requests and their first and last
// true times.
type serverRequests struct {
	n           int64
	first, last time.Duration
}

// New builds a scenario from cfg at T = 0.
func New(cfg Config) (*Sim, error) {
	noise := NewNoise(cfg.Seed, len(cfg.Servers))
	client, err := NewKernel(cfg.Clock, noise.Wander)
	if err != nil {
		return nil, err
	}
	s := &Sim{
		client:  client,
		epochNS: client.epochNS,
		servers: slices.Clone(cfg.Servers),
		leap:    cfg.Leap,
	}
	for i, sc := range cfg.Servers {
		l, err := NewLink(sc.Link, noise.Links[i])
		if err != nil {
			return nil, fmt.Errorf("server s%d: %w", i+1, err)
		}
		if sc.Leap > 3 {
			return nil, fmt.Errorf("server s%d: %w: leap indicator %d", i+1, ErrInvalidConfig, sc.Leap)
		}
		s.links = append(s.links, l)
	}
	s.down = make([]bool, len(cfg.Servers))
	s.requests = make([]serverRequests, len(cfg.Servers))
	mc := cfg.Metrics
	mc.Sources = len(cfg.Servers)
	s.rec = NewRecorder(mc)
	return s, nil
}

// Now returns the current true time T.
func (s *Sim) Now() time.Duration { return s.now }

// Client returns the client's kernel, the clock.Kernel the engine runs on.
// The Sim advances it; its owner must not call AdvanceTo.
func (s *Sim) Client() *Kernel { return s.client }

// Metrics returns the metrics of the run so far.
func (s *Sim) Metrics() Metrics {
	m := s.rec.Metrics()
	m.MeanPollRunS = s.MeanPoll().Seconds()
	return m
}

// OnSample sets a function called with every per-second sample, after the
// metrics have recorded it (for offset logs and plots); nil for none.
func (s *Sim) OnSample(fn func(Sample)) { s.onSample = fn }

// SetReceiver sets the function that gets the replies; without one,
// replies are dropped on arrival.
func (s *Sim) SetReceiver(r Receiver) { s.recv = r }

// SetEstimator sets the function the samples ask for the engine's
// estimate of the client's offset (clock − true, s) and its standard
// deviation, for the metrics of its honesty; nil for none.
func (s *Sim) SetEstimator(fn func() (offsetS, sigmaS float64, ok bool)) { s.estimate = fn }

// SetServerOffset sets server i's clock offset from now on (a server
// that turns falseticker, or is set right).
func (s *Sim) SetServerOffset(i int, offset time.Duration) { s.servers[i].Offset = offset }

// SetServerDown makes server i drop every request from now on (down), or
// answer again.
func (s *Sim) SetServerDown(i int, down bool) { s.down[i] = down }

// MeanPoll is the mean interval between requests to a server over the
// whole run, as chrony's figures define it: (last request − first
// request)/(requests − 1), over the servers together; 0 with fewer than
// two requests to any server.
func (s *Sim) MeanPoll() time.Duration {
	var span time.Duration
	var n int64
	for _, r := range s.requests {
		if r.n > 1 {
			span += r.last - r.first
			n += r.n - 1
		}
	}
	if n == 0 {
		return 0
	}
	return span / time.Duration(n)
}

// Timer is a scheduled event.
type Timer struct {
	sim   *Sim
	at    time.Duration // true time, or monotonic time when mono
	mono  bool
	seq   uint64
	fn    func()
	index int // in its heap; −1 once fired or stopped
}

// Stop cancels the event; it reports whether the event was still pending.
func (t *Timer) Stop() bool {
	if t.index < 0 {
		return false
	}
	h := &t.sim.events
	if t.mono {
		h = &t.sim.timers
	}
	heap.Remove(h, t.index)
	return true
}

// At schedules fn at true time t; a time already past means now, after
// the events already due.
func (s *Sim) At(t time.Duration, fn func()) *Timer {
	return s.schedule(&s.events, max(t, s.now), false, fn)
}

// AtMonotonic schedules fn for when the client's CLOCK_MONOTONIC reads at
// least m, as a timer armed by the engine would fire: never early, and
// following every frequency change made in the meantime.
func (s *Sim) AtMonotonic(m time.Duration, fn func()) *Timer {
	return s.schedule(&s.timers, m, true, fn)
}

func (s *Sim) schedule(h *timerHeap, at time.Duration, mono bool, fn func()) *Timer {
	s.seq++
	t := &Timer{sim: s, at: at, mono: mono, seq: s.seq, fn: fn}
	heap.Push(h, t)
	return t
}

// RunUntil runs the simulation to true time end: every whole second's
// kernel update and sample, and every event due at or before end. An end
// before Now does nothing.
func (s *Sim) RunUntil(end time.Duration) {
	if s.running {
		panic("sim: RunUntil called from an event")
	}
	if end < s.now {
		return
	}
	s.running = true
	defer func() { s.running = false }()
	if !s.started {
		s.started = true
		s.sample()
	}
	for {
		next := (s.now/time.Second + 1) * time.Second // the update tick
		var due *Timer
		if len(s.events) > 0 && s.events[0].at < next {
			next, due = s.events[0].at, s.events[0]
		}
		if len(s.timers) > 0 {
			m := s.timers[0]
			at := s.client.monotonicDeadline(m.at)
			if at < next || (at == next && due != nil && m.seq < due.seq) {
				next, due = at, m
			}
		}
		if next > end {
			s.advance(end)
			return
		}
		s.advance(next)
		if due == nil {
			s.sample()
			continue
		}
		if due.mono {
			heap.Pop(&s.timers)
		} else {
			heap.Pop(&s.events)
		}
		due.fn()
	}
}

func (s *Sim) advance(t time.Duration) {
	s.client.AdvanceTo(t)
	s.now = t
}

func (s *Sim) sample() {
	smp := Sample{
		T:            s.now,
		OffsetS:      s.client.Offset(),
		FreqErrorPPB: s.client.FreqErrorPPB(),
		Polls:        s.polls,
		Adjustments:  s.client.Adjustments(),
	}
	if s.estimate != nil {
		smp.EstimateS, smp.SigmaS, smp.HaveEstimate = s.estimate()
	}
	s.rec.Add(smp)
	if s.onSample != nil {
		s.onSample(smp)
	}
}

// Send hands a request packet to the network towards server at the
// current true time (so a *Sim is a daemon.Transport); the server answers it instantly on arrival, and the
// reply comes back through the Receiver. Each call counts as one poll. The
// packet is copied. A lost packet is not an error: it just never arrives.
func (s *Sim) Send(server int, pkt []byte) error {
	if server < 0 || server >= len(s.servers) {
		return fmt.Errorf("send to server %d of %d: %w", server, len(s.servers), ErrUnknownServer)
	}
	s.polls++
	r := &s.requests[server]
	if r.n == 0 {
		r.first = s.now
	}
	r.n++
	r.last = s.now
	d, ok := s.links[server].Delay(Up)
	if !ok {
		return nil
	}
	req := slices.Clone(pkt)
	s.At(s.now+d, func() { s.serve(server, req) })
	return nil
}

// serve is a request's arrival at a server.
func (s *Sim) serve(server int, req []byte) {
	if s.down[server] {
		return
	}
	sc := s.servers[server]
	utc := s.epochNS + int64(s.now) + int64(sc.Offset)
	if l := s.leap; l != nil {
		switch {
		case s.now >= l.At-time.Second && l.Delete:
			// 23:59:59 is skipped: the clock goes from 23:59:58.999…
			// to 00:00:00.
			utc += nsPerSecond
		case s.now >= l.At:
			utc -= nsPerSecond
		case s.now >= l.Announce && l.Delete:
			sc.Leap = 2
		case s.now >= l.Announce:
			sc.Leap = 1
		}
	}
	reply := buildReply(&sc, req, utc)
	if reply == nil {
		return
	}
	d, ok := s.links[server].Delay(Down)
	if !ok {
		return
	}
	s.At(s.now+d, func() {
		if s.recv != nil {
			rt, mono := s.client.Now()
			s.recv(server, reply, rt, mono)
		}
	})
}

// NTP packet layout (RFC 5905 section 7.3).
const (
	ntpPacketLen    = 48
	ntpModeClient   = 3
	ntpModeServer   = 4
	ntpEraOffsetS   = 2208988800 // 1900-01-01 to 1970-01-01
	defaultStratum  = 1
	defaultPrecLog2 = -20
)

// buildReply answers an NTP client request (mode 3, at least 48 bytes; an
// extension or MAC is ignored) the way a perfect stratum-1 server would:
// version and poll copied, origin = the request's transmit timestamp,
// receive = transmit = the server's clock at arrival (it answers
// instantly), reference = that time truncated to the second. Anything else
// gets no reply.
func buildReply(sc *ServerConfig, req []byte, nowNS int64) []byte {
	if len(req) < ntpPacketLen || req[0]&7 != ntpModeClient {
		return nil
	}
	stratum := sc.Stratum
	if stratum == 0 {
		stratum = defaultStratum
	}
	refID := sc.RefID
	if refID == [4]byte{} {
		refID = [4]byte{'S', 'I', 'M', 0}
	}
	prec := sc.PrecisionLog2
	if prec == 0 {
		prec = defaultPrecLog2
	}
	r := make([]byte, ntpPacketLen)
	r[0] = sc.Leap<<6 | req[0]&0x38 | ntpModeServer
	r[1] = stratum
	r[2] = req[2]
	r[3] = byte(prec)
	binary.BigEndian.PutUint32(r[4:], ntpShort(sc.RootDelay))
	binary.BigEndian.PutUint32(r[8:], ntpShort(sc.RootDispersion))
	copy(r[12:16], refID[:])
	binary.BigEndian.PutUint64(r[16:], ntpTimestamp(floorDiv(nowNS, nsPerSecond)*nsPerSecond))
	copy(r[24:32], req[40:48])
	ts := ntpTimestamp(nowNS)
	binary.BigEndian.PutUint64(r[32:], ts)
	binary.BigEndian.PutUint64(r[40:], ts)
	return r
}

// ntpTimestamp converts Unix ns to the NTP 64-bit format, rounding to the
// nearest 2^-32 s, so that decoding and rounding to ns gives unixNS back.
func ntpTimestamp(unixNS int64) uint64 {
	sec := floorDiv(unixNS, nsPerSecond)
	frac := (uint64(unixNS-sec*nsPerSecond)<<32 + uint64(nsPerSecond/2)) / uint64(nsPerSecond)
	if frac == 1<<32 {
		sec, frac = sec+1, 0
	}
	return uint64(uint32(sec+ntpEraOffsetS))<<32 | frac
}

// ntpShort converts a duration to the NTP 16.16 short format.
func ntpShort(d time.Duration) uint32 {
	return uint32(math.Round(max(d.Seconds(), 0) * 65536))
}

// timerHeap orders timers by time, then by scheduling order.
type timerHeap []*Timer

func (h timerHeap) Len() int { return len(h) }

func (h timerHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}

func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *timerHeap) Push(x any) {
	t := x.(*Timer)
	t.index = len(*h)
	*h = append(*h, t)
}

func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}
