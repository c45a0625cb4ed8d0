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
	"github.com/ntptool/ntptool/estimator"
	"github.com/ntptool/ntptool/ntpclient"
	"github.com/ntptool/ntptool/selection"
)

// Transport sends a request to the source with the given id (see
// Engine.AddSource). Replies come back through Engine.Receive. Send must
// not keep packet after it returns: the engine reuses the buffer.
type Transport interface {
	Send(source int, packet []byte) error
}

// Options are the engine's inputs besides the configuration.
type Options struct {
	// Clock is the clock to discipline (a simulated kernel, clock.Null, or
	// the Linux kernel).
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
	// OnStepProposal, when not nil, is called when the engine wants to
	// step the clock: the owner runs its pre-step hooks (they may take
	// seconds while replies keep arriving) and then calls CommitStep, or
	// CancelStep if the hooks say no. Nil commits every proposal at once.
	OnStepProposal func(StepProposal)
}

// StepProposal is a step the engine wants to make.
type StepProposal struct {
	// Step is the step it would make now (positive: forward).
	Step time.Duration
	// Monotonic is when it was proposed.
	Monotonic time.Duration
}

// StepResult is a committed step.
type StepResult struct {
	// Step is the step made (positive: forward); Proposed was the step
	// when it was proposed.
	Step, Proposed time.Duration
}

const (
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
	// boundSigmas is how many standard deviations of a source's estimate
	// its correctness interval adds to its root distance.
	boundSigmas = 3
	// burstTarget: an iburst goes on while the frequency's uncertainty
	// would carry the phase further than this over the minimum poll.
	burstTarget = 250e-6
	// candidateSamples is how many samples a source must have given before
	// its estimate takes part in a selection (it votes from the start),
	// when there are enough voters for a minority to exist (three or
	// more): one sample per source cannot tell a colluding minority from
	// the truth when the first exchanges happen to be slow and their error
	// bars wide. The second sample comes 2 s later with iburst, one poll
	// later without, when the frequency needs it anyway. With one or two
	// sources there is no minority to out-vote, and no reason to wait.
	candidateSamples = 2
)

// ErrNoStepPending is returned by CommitStep and CancelStep without a
// pending proposal.
var ErrNoStepPending = errors.New("no step proposal pending")

// Engine is the synchronisation engine. It is not safe for concurrent
// use: one owner calls Start, Receive, Wakeup and the step methods.
//
// The path of a sample: the wire (ntpclient.Source: request, reply,
// validation) → the source's estimator (package estimator) → the
// selection and combination of the sources (package selection) → the
// discipline (package discipline), whose actions the engine carries out
// through the clock (package clock), recording every error.
//
// The estimators work on the clock as it would be without the corrections
// the engine applied (the "u" axis): a measurement of the real clock, minus
// the phase applied by then (clock.Clock.Applied), is a measurement of
// that clock, whose phase only the frequency corrections change. So a
// correction never invalidates an estimator's state: no sample history
// to rebase, and slews may overlap exchanges.
type Engine struct {
	clk     *clock.Clock
	tr      Transport
	log     *slog.Logger
	disc    *discipline.Discipline
	sources []*source
	nextID  int
	epoch   time.Time // origin of the u axis
	sigmaY0 float64   // a new source's prior frequency uncertainty
	wander  float64
	rng     *rand.Rand

	requests int
	state    State
	// The last combined estimate (u-axis), its time, and its survivors.
	est      estimator.Estimate
	estU     float64
	haveEst  bool
	distance float64 // root distance of the last selection
	leap     int     // the leap second announced by the majority
	held     error   // why the clock is not being corrected
	noSelect error   // why the last selection failed
	lastErr  error   // the last error carrying out an action
	errCount int

	pending   *StepProposal
	onPropose func(StepProposal)

	saveDrift     func(driftfile.Drift)
	nextDriftSave time.Duration // monotonic
}

// State is the engine's synchronisation state.
type State int

// States.
const (
	// Unsynchronised: the clock has not been corrected from a selection
	// yet.
	Unsynchronised State = iota
	// Synchronised: the last update selected and combined sources.
	Synchronised
	// Holdover: it was synchronised, but the sources no longer agree or
	// answer; the clock runs on the learned frequency.
	Holdover
)

func (s State) String() string {
	switch s {
	case Synchronised:
		return "synchronised"
	case Holdover:
		return "holdover"
	}
	return "unsynchronised"
}

// source is one server as the engine sees it: its wire state, its
// estimator and its part in the last selection.
type source struct {
	id    int
	cfg   config.Source
	wire  *ntpclient.Source
	est   *estimator.Estimator
	role  Role
	last  ntpclient.Sample // the last usable sample
	lastU float64          // its filter time
}

// New builds an engine for cfg's sources and applies the drift file's
// frequency. The sources get ids 0, 1, ... in configuration order.
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
		disc: discipline.New(discipline.Config{
			Policy: discipline.Policy{
				StepThreshold: cfg.Step.Threshold.Duration,
				StepLimit:     cfg.Step.Limit,
				Panic:         cfg.Step.Panic.Duration,
				SlewOnly:      cfg.Step.SlewOnly,
			},
			MaxSlewPPM: cfg.Clock.MaxSlewRatePPM,
			MaxFreqPPM: clock.MaxCorrectionPPM,
		}),
		saveDrift: opt.SaveDrift,
		onPropose: opt.OnStepProposal,
		wander:    opt.Wander,
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("seed the request cookies: %w", err)
	}
	e.rng = rand.New(rand.NewChaCha8(seed))
	e.sigmaY0 = noDriftSigmaPPM * 1e-6
	var now time.Duration
	e.epoch, now = e.clk.Now()
	if d := opt.Drift; d != nil {
		e.sigmaY0 = min(max(d.SkewPPM, driftFloorPPM), noDriftSigmaPPM) * 1e-6
		if d.SkewPPM == 0 {
			e.sigmaY0 = driftUnknownPPM * 1e-6
		}
		if _, err := e.clk.Apply(clock.Update{FreqPPM: d.CorrectionPPM}, now); err != nil {
			return nil, fmt.Errorf("apply the drift file's frequency: %w", err)
		}
	}
	e.clk.OnStep(func(time.Duration) {
		for _, s := range e.sources {
			s.wire.Stepped()
		}
	})
	for _, sc := range cfg.Sources {
		e.AddSource(sc)
	}
	return e, nil
}

// AddSource adds a source (a server, or one address of a pool: the name
// is sc.Server, else sc.Pool) and returns its id. A source added after
// Start polls at once. The learned frequency is kept: the new source's
// estimator starts from it, as uncertain as the last combination says.
func (e *Engine) AddSource(sc config.Source) int {
	name := sc.Server
	if name == "" {
		name = sc.Pool
	}
	sigmaY := e.sigmaY0
	if e.haveEst {
		sigmaY = math.Max(math.Sqrt(e.est.VarY), driftFloorPPM*1e-6)
	}
	s := &source{
		id:   e.nextID,
		cfg:  sc,
		wire: ntpclient.NewSource(ntpclient.SourceConfig{Name: name, MinPoll: sc.MinPoll, MaxPoll: sc.MaxPoll, IBurst: sc.IBurst}, e.rng),
		est:  estimator.New(estimator.Config{SigmaY0: sigmaY, Wander: e.wander, MinPoll: sc.MinPoll, MaxPoll: sc.MaxPoll}),
	}
	e.nextID++
	e.sources = append(e.sources, s)
	if e.nextDriftSave != 0 { // started
		_, now := e.clk.Now()
		s.wire.Start(now)
	}
	return s.id
}

// RemoveSource removes the source with the given id; it reports whether
// there was one.
func (e *Engine) RemoveSource(id int) bool {
	for i, s := range e.sources {
		if s.id == id {
			e.sources = append(e.sources[:i], e.sources[i+1:]...)
			return true
		}
	}
	return false
}

func (e *Engine) source(id int) *source {
	for _, s := range e.sources {
		if s.id == id {
			return s
		}
	}
	return nil
}

// Start schedules the first requests, at once.
func (e *Engine) Start() {
	_, now := e.clk.Now()
	for _, s := range e.sources {
		s.wire.Start(now)
	}
	e.nextDriftSave = now + driftSaveInterval
}

// NextWakeup is the monotonic time at which Wakeup must be called.
func (e *Engine) NextWakeup() time.Duration {
	next := time.Duration(math.MaxInt64)
	for _, s := range e.sources {
		next = min(next, s.wire.NextPoll())
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
		e.check("end slew", e.clk.EndSlew(now))
	}
	for _, s := range e.sources {
		if now >= s.wire.NextPoll() {
			e.requests++
			settled := s.est.SigmaY()*math.Ldexp(1, s.cfg.MinPoll) <= burstTarget
			if err := e.tr.Send(s.id, s.wire.Request(real, now, settled)); err != nil {
				e.log.Warn("send", "source", s.wire.Name(), "err", err)
			}
		}
	}
	if e.saveDrift != nil && now >= e.nextDriftSave {
		e.nextDriftSave = now + driftSaveInterval
		if e.state == Synchronised {
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

// Receive processes a packet from the source with the given id, received
// at local time rxReal (the kernel's receive timestamp) and monotonic time
// rxMono.
func (e *Engine) Receive(id int, pkt []byte, rxReal time.Time, rxMono time.Duration) {
	s := e.source(id)
	if s == nil {
		return
	}
	sample, mid, err := s.wire.Reply(pkt, rxReal, rxMono)
	switch {
	case errors.Is(err, ntpclient.ErrNotOurs):
		return
	case err != nil:
		e.log.Info("unusable reply", "source", s.wire.Name(), "err", err)
		return
	}
	txReal := s.wire.TxReal()
	u, applied := e.u(txReal.Add(rxReal.Sub(txReal)/2), mid)
	switch s.est.Add(u, sample.OffsetS-applied, sample.DelayS) {
	case estimator.Outlier:
		e.log.Debug("outlier", "source", s.wire.Name(), "offset_seconds", sample.OffsetS, "delay_seconds", sample.DelayS)
		return
	case estimator.Changed:
		e.log.Info("source changed: its estimate starts over", "source", s.wire.Name(), "offset_seconds", sample.OffsetS)
	}
	s.wire.SetPollLog2(s.est.AdaptPoll(s.wire.KoDFloorLog2()))
	s.last, s.lastU = sample, u
	e.update()
}

// selected is a selection's outcome as the discipline needs it.
type selected struct {
	res selection.Result
	in  discipline.Input
	// waiting: the survivors disagree beyond their noise and some voting
	// sources have not answered yet; better wait for them.
	waiting bool
}

// selectNow predicts every voting source to now, selects and combines
// them, and marks each source's role.
func (e *Engine) selectNow(real time.Time, now time.Duration) (selected, error) {
	u, applied := e.u(real, now)
	var live []*source
	var cands []selection.Candidate
	voters := 0
	for _, s := range e.sources {
		if s.wire.Voting() {
			voters++
		}
	}
	samples := 1
	if voters >= 3 {
		samples = candidateSamples
	}
	for _, s := range e.sources {
		s.role = RoleNone
		if s.wire.Unreachable() {
			s.role = RoleUnreachable
		}
		if !s.wire.Voting() {
			continue
		}
		est, ok := s.est.Predict(u)
		if !ok || s.est.Updates() < samples {
			continue
		}
		live = append(live, s)
		cands = append(cands, selection.Candidate{Est: est, BoundS: s.wire.Distance(s.est.FloorDelay()) + boundSigmas*math.Sqrt(est.VarX)})
	}
	opt := selection.Options{Voters: voters}
	if e.haveEst {
		opt.Previous, opt.HavePrevious = e.est.X+e.est.Y*(u-e.estU), true
	}
	res, err := selection.Select(cands, opt)
	if err != nil {
		for _, s := range live {
			s.role = RoleFalseticker
		}
		return selected{}, err
	}
	for _, s := range live {
		s.role = RoleFalseticker
	}
	for _, i := range res.Truechimers {
		live[i].role = RoleNotCombined
	}
	var ins, del int
	best, distance := -1, math.Inf(1)
	for _, i := range res.Survivors {
		s := live[i]
		s.role = RoleCombined
		if best < 0 || cands[i].Est.VarX < cands[best].Est.VarX {
			best = i
		}
		distance = math.Min(distance, s.wire.Distance(s.est.FloorDelay()))
		switch s.wire.Last().Leap {
		case ntpclient.LeapInsert:
			ins++
		case ntpclient.LeapDelete:
			del++
		}
	}
	live[best].role = RoleSelected
	leap, announced := discipline.LeapVote(ins, del, len(res.Survivors), real.UTC())
	if announced != e.leap {
		e.log.Info("leap second announcement", "leap", announced)
		e.leap = announced
	}
	est := res.Estimate
	e.est, e.estU, e.haveEst, e.distance = est, u, true, distance
	return selected{res: res, waiting: !res.Consistent && len(cands) < voters, in: discipline.Input{
		OffsetS: est.X + applied, SigmaS: math.Sqrt(est.VarX),
		FreqError: est.Y, SigmaY: math.Sqrt(est.VarY),
		FreqPPM: e.clk.FrequencyPPM(), DistanceS: distance, Leap: leap,
	}}, nil
}

// update selects the truechimers, combines them and corrects the clock.
func (e *Engine) update() {
	real, now := e.clk.Now()
	sel, err := e.selectNow(real, now)
	if err != nil {
		if e.noSelect == nil || e.noSelect.Error() != err.Error() {
			e.log.Warn("no selection: the clock is not corrected", "err", err)
		}
		e.noSelect = err
		if e.state == Synchronised {
			e.setState(Holdover)
		}
		return
	}
	e.noSelect = nil
	if sel.waiting {
		return
	}
	act := e.disc.Update(sel.in)
	e.log.Debug("update", "monotonic_seconds", now.Seconds(), "offset_seconds", sel.in.OffsetS, "sigma_seconds", sel.in.SigmaS,
		"freq_error_ppm", sel.in.FreqError*1e6, "sigma_freq_ppm", sel.in.SigmaY*1e6, "freq_ppm", act.FreqPPM,
		"slew_seconds", act.Slew.Seconds(), "slew_duration_seconds", act.SlewDuration.Seconds(),
		"step_seconds", act.Step.Seconds(), "survivors", len(sel.res.Survivors), "truechimers", len(sel.res.Truechimers))
	e.execute(act, now)
}

// execute carries out the discipline's actions at monotonic time now.
func (e *Engine) execute(act discipline.Actions, now time.Duration) {
	if act.Hold != nil {
		if e.held == nil || e.held.Error() != act.Hold.Error() {
			e.log.Error("clock not corrected", "err", act.Hold)
		}
		e.held = act.Hold
		return
	}
	e.held = nil
	u := clock.Update{FreqPPM: act.FreqPPM, Status: &act.Status}
	if act.Step == 0 {
		u.Slew, u.MaxRatePPM, u.MinDuration = act.Slew, act.MaxSlewPPM, act.SlewDuration
	}
	e.apply(u, now)
	if act.Step == 0 {
		e.setState(Synchronised)
		return
	}
	if e.pending == nil {
		e.pending = &StepProposal{Step: act.Step, Monotonic: now}
		e.log.Info("step proposed", "step_seconds", act.Step.Seconds())
		if e.onPropose != nil {
			e.onPropose(*e.pending)
			return
		}
		_, err := e.CommitStep()
		e.check("step", err)
	}
}

// apply makes a clock update and tells the estimators of the frequency
// change.
func (e *Engine) apply(u clock.Update, now time.Duration) {
	old := e.clk.FrequencyPPM()
	if _, err := e.clk.Apply(u, now); !e.check("clock update", err) {
		return
	}
	dy := (e.clk.FrequencyPPM() - old) * 1e-6
	for _, s := range e.sources {
		s.est.AddFrequency(dy)
	}
}

// check records err (not nil) as the last error, and logs it; it reports
// whether err is nil.
func (e *Engine) check(what string, err error) bool {
	if err == nil {
		return true
	}
	err = fmt.Errorf("%s: %w", what, err)
	if e.lastErr == nil || e.lastErr.Error() != err.Error() {
		e.log.Error("clock", "err", err)
	}
	e.lastErr = err
	e.errCount++
	return false
}

func (e *Engine) setState(s State) {
	if s != e.state {
		e.log.Info("state", "state", s.String(), "offset_seconds", e.est.X)
		e.state = s
	}
}

// PendingStep returns the step proposal awaiting CommitStep or
// CancelStep, if any.
func (e *Engine) PendingStep() (StepProposal, bool) {
	if e.pending == nil {
		return StepProposal{}, false
	}
	return *e.pending, true
}

// CommitStep makes the pending step with the offset valid now (the
// sources are selected and combined again, so replies that came in while
// the pre-step hooks ran count). The owner runs the post-step hooks after
// it.
func (e *Engine) CommitStep() (StepResult, error) {
	if e.pending == nil {
		return StepResult{}, ErrNoStepPending
	}
	proposed := e.pending.Step
	real, now := e.clk.Now()
	sel, err := e.selectNow(real, now)
	if err != nil {
		// Keep the last combination, predicted to now.
		sel.in = e.predicted(real, now)
	}
	e.pending = nil
	act := e.disc.CommitStep(sel.in)
	if err := e.clk.Step(act.Step, now); err != nil {
		e.check("step", err)
		return StepResult{}, err
	}
	e.log.Info("clock stepped", "step_seconds", act.Step.Seconds(), "proposed_seconds", proposed.Seconds())
	_, now = e.clk.Now()
	e.apply(clock.Update{FreqPPM: act.FreqPPM, Status: &act.Status}, now)
	e.setState(Synchronised)
	return StepResult{Step: act.Step, Proposed: proposed}, nil
}

// CancelStep abandons the pending step (a pre-step hook failed and the
// policy says not to step): with hold nil the offset is slewed out
// instead, at the fastest rate allowed; otherwise the clock is left alone
// and hold is reported as the reason.
func (e *Engine) CancelStep(hold error) error {
	if e.pending == nil {
		return ErrNoStepPending
	}
	e.pending = nil
	real, now := e.clk.Now()
	sel, err := e.selectNow(real, now)
	if err != nil {
		sel.in = e.predicted(real, now)
	}
	e.log.Warn("step cancelled", "slew_instead", hold == nil, "reason", hold)
	e.execute(e.disc.CancelStep(sel.in, hold), now)
	return nil
}

// predicted is the discipline's input from the last combination,
// predicted to now.
func (e *Engine) predicted(real time.Time, now time.Duration) discipline.Input {
	u, applied := e.u(real, now)
	h := u - e.estU
	return discipline.Input{
		OffsetS: e.est.X + e.est.Y*h + applied, SigmaS: math.Sqrt(e.est.VarX + e.est.VarY*h*h),
		FreqError: e.est.Y, SigmaY: math.Sqrt(e.est.VarY),
		FreqPPM: e.clk.FrequencyPPM(), DistanceS: e.distance,
	}
}
