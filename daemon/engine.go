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
	// Statistics for the simulator's metrics and the status command.
	requests int
	held     error
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
		wander: opt.Wander,
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

// Stats are the engine's counters.
type Stats struct {
	// Requests sent, clock Updates made, and whether it is Synced.
	Requests, Updates int
	Synced            bool
	// MeanPoll is the mean poll interval of the sources.
	MeanPoll time.Duration
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	st := Stats{Requests: e.requests, Updates: e.updates, Synced: e.synced}
	var sum time.Duration
	for _, s := range e.sources {
		sum += s.pollSum
	}
	if n := e.requests - len(e.sources); n > 0 {
		st.MeanPoll = sum / time.Duration(n)
	}
	return st
}

// Drift is the learned frequency correction, for the drift file.
func (e *Engine) Drift() driftfile.Drift {
	var skew float64
	for _, s := range e.sources {
		if s.filter != nil {
			skew = s.filter.SigmaY() * 1e6
		}
	}
	return driftfile.Drift{CorrectionPPM: e.clk.FrequencyPPM(), SkewPPM: skew}
}
