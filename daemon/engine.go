package daemon

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/discipline"
	"github.com/ntptool/ntptool/driftfile"
	"github.com/ntptool/ntptool/ntpclient"
)

// Transport sends a request to source i (the index into Config.Sources).
// Replies come back through Engine.Receive. Send must not keep packet
// after it returns: the engine reuses the buffer.
type Transport interface {
	Send(source int, packet []byte) error
}

// Options are the engine's inputs besides the configuration.
type Options struct {
	// Clock is the clock to discipline (a simulated kernel, clock.Null, and on a host the Linux kernel once the daemon lands).
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

const (
	// minSlew is the shortest slew: a timer firing late costs little.
	minSlew = time.Second
	// driftSaveInterval is how often the learned frequency is saved.
	driftSaveInterval = time.Hour
	// noDriftSigmaPPM is the frequency uncertainty without a drift file:
	// the kernel's whole range.
	noDriftSigmaPPM = 500
	// driftFloorPPM is the least uncertainty of a drift file's value, and
	// driftUnknownPPM the uncertainty of one without an error bound
	// (ntpd's format, which ntptool writes too): it may be old, or from
	// another machine.
	driftFloorPPM   = 1
	driftUnknownPPM = 10
)

// Engine is the synchronisation engine. It is not safe for concurrent
// use: one owner calls Start, Receive and Wakeup.
//
// The sources' filters work on the clock as it would be without the
// corrections the engine applied (the "u" axis): a measurement of the
// real clock, minus the phase applied by then (clock.Clock.Applied), is a
// measurement of that clock, whose phase only the frequency corrections
// change. So a correction never invalidates a filter's state: no sample
// history to rebase, and slews may overlap exchanges.
type Engine struct {
	clk     *clock.Clock
	tr      Transport
	log     *slog.Logger
	policy  discipline.Policy
	sources []*ntpclient.Source
	epoch   time.Time // origin of the u axis

	updates  int // clock updates made
	synced   bool
	leap     int // the leap second announced to the kernel
	requests int
	held     error
	// The last combined estimate (u-axis), its time and how many
	// truechimers made it, for Status and Drift.
	est         ntpclient.Estimate
	estU        float64
	truechimers int

	saveDrift     func(driftfile.Drift)
	nextDriftSave time.Duration // monotonic
}

// New builds an engine for cfg's sources and applies the drift file's
// frequency.
func New(cfg *config.Config, opt Options) (*Engine, error) {
	if opt.Clock == nil || opt.Transport == nil {
		return nil, errors.New("engine needs a clock and a transport")
	}
	if len(cfg.Sources) == 0 {
		return nil, errors.New("no sources configured")
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
		saveDrift: opt.SaveDrift,
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	wander := opt.Wander
	if wander <= 0 {
		wander = 1e-9
	}
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("seed the request cookies: %w", err)
	}
	rng := rand.New(rand.NewChaCha8(seed))
	sigmaY := noDriftSigmaPPM * 1e-6
	var now time.Duration
	e.epoch, now = e.clk.Now()
	if opt.Drift != nil {
		sigmaY = min(max(opt.Drift.SkewPPM, driftFloorPPM), noDriftSigmaPPM) * 1e-6
		if opt.Drift.SkewPPM == 0 {
			sigmaY = driftUnknownPPM * 1e-6
		}
		if _, err := e.clk.Apply(clock.Update{FreqPPM: opt.Drift.CorrectionPPM}, now); err != nil {
			return nil, fmt.Errorf("apply the drift file's frequency: %w", err)
		}
	}
	e.clk.OnStep(func(time.Duration) {
		for _, s := range e.sources {
			s.Stepped()
		}
	})
	for _, sc := range cfg.Sources {
		name := sc.Server
		if name == "" {
			name = sc.Pool
		}
		e.sources = append(e.sources, ntpclient.NewSource(ntpclient.SourceConfig{
			Name: name, MinPoll: sc.MinPoll, MaxPoll: sc.MaxPoll, IBurst: sc.IBurst,
			SigmaY0: sigmaY, Wander: wander,
		}, rng))
	}
	return e, nil
}

// Start schedules the first requests, at once.
func (e *Engine) Start() {
	_, now := e.clk.Now()
	for _, s := range e.sources {
		s.Start(now)
	}
	e.nextDriftSave = now + driftSaveInterval
}

// NextWakeup is the monotonic time at which Wakeup must be called.
func (e *Engine) NextWakeup() time.Duration {
	next := time.Duration(math.MaxInt64)
	for _, s := range e.sources {
		next = min(next, s.NextPoll())
	}
	if slewing, end := e.clk.SlewEnd(); slewing {
		next = min(next, end)
	}
	if e.saveDrift != nil {
		next = min(next, e.nextDriftSave)
	}
	return next
}

// Wakeup does what is due: ends a slew, sends requests, saves the drift.
func (e *Engine) Wakeup() {
	real, now := e.clk.Now()
	if slewing, end := e.clk.SlewEnd(); slewing && now >= end {
		if err := e.clk.EndSlew(now); err != nil {
			e.log.Error("end slew", "err", err)
		}
	}
	for i, s := range e.sources {
		if now >= s.NextPoll() {
			e.requests++
			if err := e.tr.Send(i, s.Request(real, now)); err != nil {
				e.log.Warn("send", "source", s.Name(), "err", err)
			}
		}
	}
	if e.saveDrift != nil && now >= e.nextDriftSave {
		e.nextDriftSave = now + driftSaveInterval
		if e.synced {
			e.saveDrift(e.Drift())
		}
	}
}

// u is the filters' time axis at local time real and monotonic time mono:
// seconds since the epoch on the clock without the applied corrections.
func (e *Engine) u(real time.Time, mono time.Duration) (u, applied float64) {
	applied = e.clk.Applied(mono).Seconds()
	return real.Sub(e.epoch).Seconds() - applied, applied
}

// Receive processes a packet from source i received at local time rxReal
// (the kernel's receive timestamp) and monotonic time rxMono.
func (e *Engine) Receive(i int, pkt []byte, rxReal time.Time, rxMono time.Duration) {
	if i < 0 || i >= len(e.sources) {
		return
	}
	s := e.sources[i]
	sample, mid, err := s.Reply(pkt, rxReal, rxMono)
	switch {
	case errors.Is(err, ntpclient.ErrNotOurs):
		return
	case err != nil:
		e.log.Info("unusable reply", "source", s.Name(), "err", err)
		return
	}
	midReal := s.TxReal().Add(rxReal.Sub(s.TxReal()) / 2)
	u, applied := e.u(midReal, mid)
	if !s.AddSample(sample, u, sample.OffsetS-applied) {
		e.log.Debug("outlier", "source", s.Name(), "offset_seconds", sample.OffsetS, "delay_seconds", sample.DelayS)
		return
	}
	e.update()
}

// update selects the truechimers, combines them and corrects the clock.
func (e *Engine) update() {
	real, now := e.clk.Now()
	u, applied := e.u(real, now)
	var live []*ntpclient.Source
	var ests []ntpclient.Estimate
	var cands []ntpclient.Candidate
	voters := 0
	for _, s := range e.sources {
		if !s.Voting() {
			continue
		}
		voters++
		est, ok := s.Predict(u)
		if !ok {
			continue
		}
		live = append(live, s)
		ests = append(ests, est)
		cands = append(cands, ntpclient.Candidate{OffsetS: est.X, BoundS: s.Distance() + 3*math.Sqrt(est.VarX)})
	}
	idx, err := ntpclient.Select(cands, voters)
	if err != nil {
		e.log.Warn("selection", "err", err, "answered", len(cands), "voting", voters)
		return
	}
	est := discipline.Combine(discipline.Combinable(ests, idx))
	if !finite(est.X, est.VarX, est.Y, est.VarY) {
		e.log.Error("estimate is not finite: clock not corrected", "offset_seconds", est.X)
		return
	}
	offset := est.X + applied // the real clock's offset now (local − true)
	e.est, e.estU, e.truechimers = est, u, len(idx)

	action, err := e.policy.Decide(offset, e.updates)
	if err != nil {
		if e.held == nil {
			e.log.Error("clock not corrected", "err", err)
		}
		e.held = err
		return
	}
	e.held = nil
	sigmaX := math.Sqrt(est.VarX)
	freq := discipline.Frequency(e.clk.FrequencyPPM(), est.Y, clock.MaxCorrectionPPM)
	dy := (freq - e.clk.FrequencyPPM()) * 1e-6
	update := clock.Update{
		FreqPPM: freq,
		Status: &clock.Status{
			Synchronized: true,
			EstError:     clock.Seconds(sigmaX),
			MaxError:     clock.Seconds(3*sigmaX + live[idx[0]].Distance()),
			Leap:         e.leapVote(live, idx, real),
		},
	}
	if action == discipline.Step {
		if err := e.clk.Step(clock.Seconds(-offset), now); err != nil {
			e.log.Error("step", "err", err)
			return
		}
		e.log.Info("clock stepped", "offset_seconds", offset)
		_, now = e.clk.Now()
	} else {
		update.Slew = clock.Seconds(-offset)
		update.MaxRatePPM, update.MinDuration = e.policy.MaxSlewPPM, minSlew
	}
	if _, err := e.clk.Apply(update, now); err != nil {
		e.log.Error("clock update", "err", err)
		return
	}
	for _, s := range live {
		s.AddFrequency(dy)
		s.AdaptPoll()
	}
	e.updates++
	e.synced = true
}

// leapVote returns the leap second to hand to the kernel: +1 insert, -1
// delete, 0 none. The majority of the truechimers must announce it, and
// it is armed only on the last day of a month (UTC, at local time real):
// the leap indicator warns of a leap at the end of the current month
// (RFC 5905 section 7.3), servers announce it for days or weeks, and the
// kernel applies STA_INS/STA_DEL at the end of the current day.
func (e *Engine) leapVote(live []*ntpclient.Source, idx []int, real time.Time) int {
	var ins, del int
	for _, i := range idx {
		switch live[i].Last().Leap {
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
	if utc := real.UTC(); utc.AddDate(0, 0, 1).Month() == utc.Month() {
		return 0 // not the last day of the month yet
	}
	return leap
}

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}
