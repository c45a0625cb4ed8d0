package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/discipline"
	"github.com/ntptool/ntptool/driftfile"
	"github.com/ntptool/ntptool/ntpclient"
)

// Transport sends a request to source i (the index into Config.Sources).
// Replies come back through Engine.Receive.
type Transport interface {
	Send(source int, packet []byte) error
}

// Options are the engine's inputs besides the configuration.
type Options struct {
	// Clock is the clock to discipline (unix, null or simulated kernel).
	Clock *clock.Clock
	// Transport sends requests.
	Transport Transport
	// Drift is the drift file's content at start, nil if there was none.
	Drift *driftfile.Drift
	// Logger receives the engine's events; nil discards them.
	Logger *slog.Logger
	// Wander is the prior for the clock's random-walk frequency noise in
	// (s/s)/√s. Default 1e-9, a typical undisciplined quartz oscillator.
	Wander float64
	// SaveDrift, when not nil, is called with the learned frequency once
	// an hour while synchronised (the daemon writes the drift file; it
	// also saves Drift() on exit).
	SaveDrift func(driftfile.Drift)
}

// Tunables of the estimator. They describe noise, not a window to tune.
const (
	// q0 guards against trusting a zero-excess-delay sample absolutely.
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
	// minSlew is the shortest slew: a timer firing late costs little.
	minSlew = time.Second
	// driftSaveInterval is how often the learned frequency is saved.
	driftSaveInterval = time.Hour
	// noDriftSigmaPPM is the frequency uncertainty without a drift file:
	// the kernel's whole range.
	noDriftSigmaPPM = 500
	// driftFloorPPM is the least uncertainty of a drift file's value.
	driftFloorPPM = 1
)

// Engine is the synchronisation engine. It is not safe for concurrent
// use: one owner calls Start, Receive and Wakeup.
type Engine struct {
	clk     *clock.Clock
	tr      Transport
	log     *slog.Logger
	policy  discipline.Policy
	sources []*source
	wander  float64

	epoch   time.Time // time axis origin for the filters
	updates int       // clock updates made
	synced  bool
	leap    int // the leap second announced to the kernel
	// Statistics for the simulator's metrics and the status command.
	requests int
	held     error

	saveDrift     func(driftfile.Drift)
	nextDriftSave time.Duration // monotonic
}

// New builds an engine for cfg's sources.
func New(cfg *config.Config, opt Options) (*Engine, error) {
	if opt.Clock == nil || opt.Transport == nil {
		return nil, errors.New("engine needs a clock and a transport")
	}
	e := &Engine{
		clk: opt.Clock,
		tr:  opt.Transport,
		log: opt.Logger,
		policy: discipline.Policy{
			StepThreshold: cfg.Step.Threshold.Duration,
			StepLimit:     cfg.Step.Limit,
			Panic:         cfg.Step.Panic.Duration,
			SlewOnly:      cfg.Step.SlewOnly,
			MaxSlewPPM:    cfg.Clock.MaxSlewRatePPM,
		},
		wander:    opt.Wander,
		saveDrift: opt.SaveDrift,
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.wander <= 0 {
		e.wander = 1e-9
	}
	if len(cfg.Sources) == 0 {
		return nil, errors.New("no sources configured")
	}
	sigmaY := noDriftSigmaPPM * 1e-6
	if opt.Drift != nil {
		sigmaY = math.Max(opt.Drift.SkewPPM, driftFloorPPM) * 1e-6
		_, now := e.clk.Now()
		if _, err := e.clk.Apply(clock.Update{FreqPPM: opt.Drift.CorrectionPPM}, now); err != nil {
			return nil, fmt.Errorf("apply the drift file's frequency: %w", err)
		}
	}
	e.epoch, _ = e.clk.Now()
	for i, sc := range cfg.Sources {
		name := sc.Server
		if name == "" {
			name = sc.Pool
		}
		e.sources = append(e.sources, &source{
			index: i, name: name,
			minPoll: sc.MinPoll, maxPoll: sc.MaxPoll, pollLog2: sc.MinPoll,
			iburst: sc.IBurst, sigmaY0: sigmaY,
		})
	}
	return e, nil
}

// Start schedules the first requests (at once).
func (e *Engine) Start() {
	_, now := e.clk.Now()
	for _, s := range e.sources {
		s.nextPoll = now
	}
	e.nextDriftSave = now + driftSaveInterval
}

// NextWakeup is the monotonic time at which Wakeup must be called.
func (e *Engine) NextWakeup() time.Duration {
	next := time.Duration(math.MaxInt64)
	for _, s := range e.sources {
		next = min(next, s.nextPoll)
	}
	if slewing, end := e.clk.SlewEnd(); slewing {
		next = min(next, end)
	}
	if e.saveDrift != nil {
		next = min(next, e.nextDriftSave)
	}
	return next
}

// Wakeup does what is due: ends a slew, sends requests.
func (e *Engine) Wakeup() {
	_, now := e.clk.Now()
	if slewing, end := e.clk.SlewEnd(); slewing && now >= end {
		if err := e.clk.EndSlew(now); err != nil {
			e.log.Error("end slew", "err", err)
		}
	}
	for _, s := range e.sources {
		if now >= s.nextPoll {
			e.poll(s)
		}
	}
	if e.saveDrift != nil && now >= e.nextDriftSave {
		e.nextDriftSave = now + driftSaveInterval
		if e.synced {
			e.saveDrift(e.Drift())
		}
	}
}

func (e *Engine) poll(s *source) {
	real, mono := e.clk.Now()
	if s.outstanding {
		s.reach <<= 1 // the previous request got no reply
	}
	if s.requests > 0 {
		s.pollSum += mono - s.txMono
	}
	s.txReal, s.txMono, s.outstanding = real, mono, true
	s.buf = ntpclient.Request(s.buf, real)
	e.requests++
	s.requests++
	if err := e.tr.Send(s.index, s.buf); err != nil {
		e.log.Warn("send", "source", s.name, "err", err)
	}
	interval := s.pollInterval()
	if s.inBurst() {
		interval = iburstInterval
	}
	s.nextPoll = mono + interval
}

// Receive processes a packet from source i received at local time rxReal
// (the kernel's receive timestamp) and monotonic time rxMono.
func (e *Engine) Receive(i int, pkt []byte, rxReal time.Time, rxMono time.Duration) {
	if i < 0 || i >= len(e.sources) {
		return
	}
	s := e.sources[i]
	if !s.outstanding {
		return // duplicate or unsolicited
	}
	sample, err := ntpclient.ParseReply(pkt, s.txReal, rxReal)
	if errors.Is(err, ntpclient.ErrOriginMismatch) || errors.Is(err, ntpclient.ErrMalformed) {
		return // not the answer to our request: keep waiting for it
	}
	s.outstanding = false
	s.reach = s.reach<<1 | 1
	if err != nil {
		e.log.Info("unusable reply", "source", s.name, "err", err)
		var kod *ntpclient.KissError
		if errors.As(err, &kod) && kod.Code == "RATE" && s.pollLog2 < s.maxPoll {
			s.pollLog2++
		}
		return
	}
	mid := s.txMono + (rxMono-s.txMono)/2
	// The measurement of the clock without our corrections.
	applied := e.clk.Applied(mid).Seconds()
	uMid := s.txReal.Add(rxReal.Sub(s.txReal)/2).Sub(e.epoch).Seconds() - applied
	if !s.addSample(sample, uMid, sample.Offset-applied, e.wander) {
		e.log.Debug("outlier", "source", s.name, "offset_seconds", sample.Offset, "delay_seconds", sample.Delay)
		return
	}
	s.last = sample.Response
	e.update()
}

// update selects, combines and corrects the clock.
func (e *Engine) update() {
	real, now := e.clk.Now()
	applied := e.clk.Applied(now).Seconds()
	u := real.Sub(e.epoch).Seconds() - applied
	var cands []ntpclient.Candidate
	var live []*source
	for _, s := range e.sources {
		if s.filter == nil {
			continue
		}
		s.filter.Predict(u - s.lastU)
		s.lastU = u
		live = append(live, s)
		cands = append(cands, ntpclient.Candidate{Offset: s.filter.X, Bound: s.distance() + 3*s.filter.SigmaX()})
	}
	idx, err := ntpclient.Select(cands)
	if err != nil {
		e.log.Warn("selection", "err", err, "sources", len(cands))
		return
	}
	// Inverse-variance combination of the truechimers.
	var wx, wy, sx, sy float64
	for _, i := range idx {
		f := live[i].filter
		vx, vy := f.P[0][0], f.P[1][1]
		sx += 1 / vx
		wx += f.X / vx
		sy += 1 / vy
		wy += f.Y / vy
	}
	xU, y := wx/sx, wy/sy
	sigmaX := math.Sqrt(1 / sx)
	offset := xU + applied // the real clock's offset now (local − true)

	action, err := e.policy.Decide(offset, e.updates)
	if err != nil {
		if e.held == nil {
			e.log.Error("clock not corrected", "err", err)
		}
		e.held = err
		return
	}
	e.held = nil
	newFreq := math.Max(-clock.MaxFreqPPM, math.Min(clock.MaxFreqPPM, e.clk.FrequencyPPM()-y*1e6))
	dy := (newFreq - e.clk.FrequencyPPM()) * 1e-6
	status := &clock.Status{
		Synchronized: true,
		EstError:     time.Duration(sigmaX * 1e9),
		MaxError:     time.Duration((3*sigmaX + live[idx[0]].distance()) * 1e9),
		Leap:         e.leapVote(live, idx),
	}
	if action == discipline.Step {
		if err := e.clk.Step(time.Duration(-offset*1e9), now); err != nil {
			e.log.Error("step", "err", err)
			return
		}
		e.log.Info("clock stepped", "offset_seconds", offset)
		_, now = e.clk.Now()
		if _, err := e.clk.Apply(clock.Update{FreqPPM: newFreq, Status: status}, now); err != nil {
			e.log.Error("clock update", "err", err)
			return
		}
	} else if _, err := e.clk.Apply(clock.Update{
		FreqPPM: newFreq, Slew: time.Duration(-offset * 1e9),
		MaxRatePPM: e.policy.MaxSlewPPM, MinDuration: minSlew, Status: status,
	}, now); err != nil {
		e.log.Error("clock update", "err", err)
		return
	}
	for _, s := range live {
		s.filter.AddFrequency(dy)
	}
	e.updates++
	e.synced = true
	for _, s := range live {
		s.adaptPoll(e.wander)
	}
}

// leapVote returns the leap second the majority of the truechimers
// announce: +1 insert, -1 delete, 0 none. The kernel applies it at the
// end of the UTC day (STA_INS/STA_DEL).
func (e *Engine) leapVote(live []*source, idx []int) int {
	var ins, del int
	for _, i := range idx {
		switch live[i].last.Leap {
		case ntpclient.LeapInsert:
			ins++
		case ntpclient.LeapDelete:
			del++
		}
	}
	leap := 0
	switch {
	case 2*ins > len(idx):
		leap = 1
	case 2*del > len(idx):
		leap = -1
	}
	if leap != e.leap {
		e.log.Info("leap second announcement", "leap", leap)
		e.leap = leap
	}
	return leap
}

// Status is the engine's state, for the status and sources commands and
// for tests.
type Status struct {
	// Synced is set once the clock has been corrected from a selection.
	Synced bool
	// OffsetS is the estimated offset of the clock now (local − true, s),
	// before the correction in progress, and SigmaS its standard deviation.
	OffsetS, SigmaS float64
	// FreqPPM is the frequency correction in force (without a slew).
	FreqPPM float64
	// Leap is the leap second announced to the kernel (+1, -1 or 0).
	Leap int
	// Requests sent and clock Updates made.
	Requests, Updates int
	// MeanPoll is the mean interval between requests to a source.
	MeanPoll time.Duration
	// Held says why the clock is not being corrected (panic threshold).
	Held string
	// Sources are the sources in configuration order.
	Sources []SourceStatus
}

// SourceStatus is one source's state.
type SourceStatus struct {
	// Name is the configured server name.
	Name string
	// Reach is the reach register: bit 0 is the latest request.
	Reach uint8
	// PollLog2 is the current poll interval, log2 seconds.
	PollLog2 int
	// OffsetS is the estimated offset of the uncorrected clock against
	// this source, and SigmaS its standard deviation; 0 before a sample.
	OffsetS, SigmaS float64
	// FloorDelayS is the lowest round-trip delay seen.
	FloorDelayS float64
	// Stratum is the source's stratum in its last valid reply.
	Stratum int
}

// Status returns the engine's state now.
func (e *Engine) Status() Status {
	st := Status{
		Synced: e.synced, FreqPPM: e.clk.FrequencyPPM(), Leap: e.leap,
		Requests: e.requests, Updates: e.updates,
	}
	if e.held != nil {
		st.Held = e.held.Error()
	}
	real, now := e.clk.Now()
	applied := e.clk.Applied(now).Seconds()
	u := real.Sub(e.epoch).Seconds() - applied
	var sum time.Duration
	var sx, wx float64
	for _, s := range e.sources {
		sum += s.pollSum
		ss := SourceStatus{Name: s.name, Reach: s.reach, PollLog2: s.pollLog2, FloorDelayS: s.floor}
		if s.last != nil {
			ss.Stratum = s.last.Stratum
		}
		if f := s.filter; f != nil {
			// Predict a copy to now: Status must not change the state.
			g := *f
			g.Predict(u - s.lastU)
			ss.OffsetS, ss.SigmaS = g.X, g.SigmaX()
			sx += 1 / g.P[0][0]
			wx += g.X / g.P[0][0]
		}
		st.Sources = append(st.Sources, ss)
	}
	if sx > 0 {
		st.OffsetS, st.SigmaS = wx/sx+applied, math.Sqrt(1/sx)
	}
	if n := e.requests - len(e.sources); n > 0 {
		st.MeanPoll = sum / time.Duration(n)
	}
	return st
}

// Drift is the learned frequency correction, for the drift file, with
// the error bound of the best source's frequency estimate.
func (e *Engine) Drift() driftfile.Drift {
	skew := math.Inf(1)
	for _, s := range e.sources {
		if s.filter != nil {
			skew = math.Min(skew, s.filter.SigmaY()*1e6)
		}
	}
	if math.IsInf(skew, 1) {
		skew = 0
	}
	return driftfile.Drift{CorrectionPPM: e.clk.FrequencyPPM(), SkewPPM: skew}
}
