package daemon

import (
	"context"
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
// Engine.AddSource) and returns when it left, on the engine's clock: the
// kernel's transmit timestamp where there is one (realtime, and the
// monotonic time it corresponds to); a zero time means the transport has
// none, and the engine's reading just before the send counts. Replies
// come back through Engine.Receive. Send must not keep packet after it
// returns: the engine reuses the buffer.
type Transport interface {
	Send(source int, packet []byte) (txRealtime time.Time, txMonotonic time.Duration, err error)
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
	// DeferSources leaves the configuration's sources out: the owner adds
	// them with AddSource as their names resolve. By default New adds
	// them with ids 0, 1, ... in configuration order.
	DeferSources bool
	// OnClockChange, when not nil, is called on the owner's goroutine
	// after every change the engine makes to the clock or tries to make
	// (updates, steps), every state change, and every change by another
	// process it books (ExternalStep, KernelChanged): for the audit
	// journal and the metrics.
	OnClockChange func(ClockChange)
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
	// burstTarget: during an iburst's start-up the interval grows only as
	// far as the frequency's uncertainty would carry the clock this far.
	burstTarget = 100e-6
	// candidateSamples is how many samples a source must have given before
	// its estimate takes part in a selection (it votes from the start),
	// when there are enough voters for a minority to exist (three or
	// more): one sample per source cannot tell a colluding minority from
	// the truth when the first exchanges happen to be slow and their error
	// bars wide. The second sample comes 2 s later with iburst, one poll
	// later without, when the frequency needs it anyway. With one or two
	// sources there is no minority to out-vote, and no reason to wait.
	candidateSamples = 2
	// reselectSigma is how much worse (in standard deviation, seconds)
	// than the best the selected source may be and stay selected: chrony's
	// reselectdist.
	reselectSigma = 100e-6
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
	// The phase Φ of the u-axis clock that the combined frequency yc
	// predicts, Φ(u) = phi + yc·(u − phiU): each source's last
	// measurement is carried forward by it (see candidate).
	phi, phiU, yc float64
	leap          int   // the leap second announced by the majority
	held          error // why the clock is not being corrected
	noSelect      error // why the last selection failed
	lastErr       error // the last error carrying out an action
	errCount      int

	pending   *StepProposal
	onPropose func(StepProposal)
	cancelled error // why the last step proposal was cancelled
	onChange  func(ClockChange)

	// The clock updates, for the status: the last one's time and offset,
	// and running means of the offsets' squares and of the intervals.
	lastUpdate     time.Time
	lastUpdateMono time.Duration
	lastOffset     float64
	meanSqOffset   float64
	meanInterval   float64 // s
	selected       int     // id of the selected source; −1 none

	saveDrift     func(driftfile.Drift)
	nextDriftSave time.Duration // monotonic

	// Between Hold and Release, replies defer their update (batched: one
	// is due).
	batching, batched bool
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
	id       int
	cfg      config.Source
	wire     *ntpclient.Source
	est      *estimator.Estimator
	role     Role
	logged   Role              // the role last logged (logRoles)
	last     ntpclient.Sample  // the last usable sample
	lastMono time.Duration     // and monotonic time
	track    estimator.Tracker // its phase carried by the combined frequency
	late     bool              // added once there was a combined estimate
	polled   bool              // polled (not retried) by this Wakeup: see alignPolls
}

// New builds an engine for cfg's sources and applies the drift file's
// frequency. The sources get ids 0, 1, ... in configuration order.
func New(cfg *config.Config, opt Options) (*Engine, error) {
	if opt.Clock == nil || opt.Transport == nil {
		return nil, errors.New("engine needs a clock and a transport")
	}
	if len(cfg.Sources) == 0 && !opt.DeferSources {
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
		onChange:  opt.OnClockChange,
		wander:    opt.Wander,
		selected:  -1,
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
		old := e.clk.FrequencyPPM()
		_, err := e.clk.Apply(clock.Update{FreqPPM: d.CorrectionPPM}, now)
		e.changed(ClockChange{Kind: ChangeUpdate, Time: e.epoch, Monotonic: now, OldFreqPPM: old, NewFreqPPM: e.clk.FrequencyPPM(), Reason: "drift file", Err: err})
		if err != nil {
			return nil, fmt.Errorf("apply the drift file's frequency: %w", err)
		}
	}
	e.clk.OnStep(func(time.Duration) {
		for _, s := range e.sources {
			s.wire.Stepped()
		}
	})
	if !opt.DeferSources {
		for i, sc := range cfg.Sources {
			if err := e.AddSource(i, sc); err != nil {
				return nil, err
			}
		}
	}
	return e, nil
}

// ErrSourceExists is returned by AddSource for an id in use.
var ErrSourceExists = errors.New("a source with this id exists")

// AddSource adds a source with the given id (a server, or one address of
// a pool: the name is sc.Server, else sc.Pool). A source added after Start
// polls at once. The learned frequency is kept: the new source's estimator
// starts from it, as uncertain as the last combination says.
func (e *Engine) AddSource(id int, sc config.Source) error {
	if e.source(id) != nil {
		return fmt.Errorf("source %d: %w", id, ErrSourceExists)
	}
	name := sc.Server
	if name == "" {
		name = sc.Pool
	}
	sigmaY := e.sigmaY0
	if e.haveEst {
		sigmaY = math.Max(math.Sqrt(e.est.VarY), driftFloorPPM*1e-6)
	}
	s := &source{
		id:   id,
		cfg:  sc,
		wire: ntpclient.NewSource(ntpclient.SourceConfig{Name: name, MinPoll: sc.MinPoll, MaxPoll: sc.MaxPoll, IBurst: sc.IBurst}, e.rng),
		est:  estimator.New(estimator.Config{SigmaY0: sigmaY, Wander: e.wander, MinPoll: sc.MinPoll, MaxPoll: sc.MaxPoll}),
		late: e.haveEst,
	}
	e.sources = append(e.sources, s)
	if e.nextDriftSave != 0 { // started
		_, now := e.clk.Now()
		s.wire.Start(now)
	}
	return nil
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

// NextWakeup is the monotonic time at which Wakeup must be called: the
// next poll of a live source or retry of a request in flight, the slew's
// end, the drift save.
func (e *Engine) NextWakeup() time.Duration {
	next := time.Duration(math.MaxInt64)
	for _, s := range e.sources {
		poll := s.wire.ScheduledPoll()
		if s.wire.Dead() == nil {
			next = min(next, poll)
		}
		if retry := s.wire.NextPoll(); retry < poll {
			next = min(next, retry)
		}
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
	silenced := false // a source stopped voting with this request
	polled := false
	for _, s := range e.sources {
		if now >= s.wire.NextPoll() {
			voting := s.wire.Voting()
			e.requests++
			scheduled := s.wire.ScheduledPoll()
			txReal, txMono, err := e.tr.Send(s.id, s.wire.Request(real, now, e.burstLimit(s)))
			s.polled = s.wire.ScheduledPoll() != scheduled // a poll, not a retry
			polled = polled || s.polled
			switch {
			case err != nil:
				e.log.Warn("send", "source", s.wire.Name(), "err", err)
			case !txReal.IsZero():
				s.wire.Sent(txReal, txMono)
			}
			silenced = silenced || voting && !s.wire.Voting()
		}
	}
	if polled {
		e.alignPolls()
	}
	if silenced && !e.anyVoting() {
		// No reply will come to run the selection: run it now, so that
		// the sources show unreachable and the state holdover.
		e.update()
	}
	if e.saveDrift != nil && now >= e.nextDriftSave {
		e.nextDriftSave = now + driftSaveInterval
		if e.state == Synchronised {
			e.saveDrift(e.Drift())
		}
	}
}

// anyVoting reports whether a source takes part in the selection.
func (e *Engine) anyVoting() bool {
	for _, s := range e.sources {
		if s.wire.Voting() {
			return true
		}
	}
	return false
}

// alignPolls brings the next polls of the sources just polled onto the
// poll grid of a reference source (the first one polled in rounds), so
// that once aligned all go in one round: the process then wakes once per
// round instead of once per source, and the selection compares samples of
// the same moment (chronyd and ntpd poll each source on its own timer).
// The grid's step is the shorter of the two poll intervals, both powers of
// 2, so aligned sources stay aligned whatever their intervals. A poll is
// only brought forward, by at most a quarter of its interval each time (a
// source aligns within 4 polls, for a poll or so more), and never for a
// source whose server asked for longer intervals (KoD RATE).
func (e *Engine) alignPolls() {
	var ref *source
	for _, s := range e.sources {
		if s.wire.InRounds() {
			ref = s
			break
		}
	}
	for _, s := range e.sources {
		polled := s.polled
		s.polled = false
		if ref == nil || !polled || s == ref || !s.wire.InRounds() || s.wire.KoDFloorLog2() > 0 {
			continue
		}
		grid := ref.wire.ScheduledPoll()
		next, interval := s.wire.ScheduledPoll(), s.wire.PollInterval()
		step := min(interval, ref.wire.PollInterval())
		off := (next - grid) % step // the latest grid point at or before next is next − off
		if off < 0 {
			off += step
		}
		s.wire.PollSooner(max(next-off, next-interval/4))
	}
}

// burstLimit is how long the frequency is good for during source s's
// iburst start-up: the time over which its uncertainty (the combined
// estimate's once there is one, what steers the clock) moves the clock by
// burstTarget.
func (e *Engine) burstLimit(s *source) time.Duration {
	sigmaY := s.est.SigmaY()
	if e.haveEst {
		sigmaY = math.Sqrt(e.est.VarY)
	}
	return clock.Seconds(burstTarget / sigmaY)
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
	case errors.Is(err, ntpclient.ErrKissOfDeath):
		// Rare, and it changes the polling: worth a line.
		e.log.Warn("kiss-o'-death", "source", s.wire.Name(), "err", err)
		return
	case err != nil:
		// No line per packet at info level: the status shows the source.
		e.log.Debug("unusable reply", "source", s.wire.Name(), "err", err)
		return
	}
	txReal := s.wire.TxReal()
	u, applied := e.u(txReal.Add(rxReal.Sub(txReal)/2), mid)
	verdict := s.est.Add(u, sample.OffsetS-applied, sample.DelayS)
	if e.debugging() {
		e.log.Debug("sample", "source", s.wire.Name(), "monotonic_seconds", mid.Seconds(), "offset_seconds", sample.OffsetS,
			"delay_seconds", sample.DelayS, "applied_seconds", applied, "outlier", verdict == estimator.Outlier, "wander", s.est.Wander())
	}
	switch verdict {
	case estimator.Outlier:
		return
	case estimator.Changed:
		e.log.Info("source changed: its estimate starts over", "source", s.wire.Name(), "offset_seconds", sample.OffsetS)
	}
	if e.haveEst {
		if !s.track.Started() || verdict == estimator.Changed {
			est, _ := s.est.Predict(u)
			s.track.Reset(est, u, e.phiOf(u))
		} else {
			s.track.Predict(u, e.phiOf(u), e.est.VarY, e.est.WanderSq)
			s.track.Update(s.est.LastMeasurement())
		}
	}
	s.wire.SetPollLog2(s.est.AdaptPoll(s.wire.KoDFloorLog2()))
	s.last, s.lastMono = sample, mid
	if e.batching {
		e.batched = true
		return
	}
	e.update()
}

// Hold defers the clock update that each reply Receive takes would make
// until Release: replies that arrive together (a poll round, see
// alignPolls) then make one selection and one clock adjustment, not one
// each.
func (e *Engine) Hold() { e.batching = true }

// Release ends a Hold with one update for the replies received since.
func (e *Engine) Release() {
	e.batching = false
	if e.batched {
		e.batched = false
		e.update()
	}
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
	defer e.logRoles()
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
	// While synchronised, a source added once there was an estimate (a
	// pool member's replacement, a reload) counts towards the majority
	// from its first candidate sample on: counted before, it would leave
	// the sources followed without one (holdover, and the live sources
	// marked falsetickers) until it has it. It is still waited for when
	// the survivors disagree. Out of synchronisation every voter counts,
	// so that no lone source is followed while the others start.
	young := 0
	for _, s := range e.sources {
		if e.state == Synchronised && s.late && s.wire.Voting() && s.est.Updates() < samples {
			young++
		}
	}
	for _, s := range e.sources {
		s.role = RoleNone
		if s.wire.Unreachable() {
			s.role = RoleUnreachable
		}
		if !s.wire.Voting() {
			continue
		}
		c, ok := e.candidate(s, u)
		if !ok || s.est.Updates() < samples {
			continue
		}
		live = append(live, s)
		cands = append(cands, c)
	}
	opt := selection.Options{Voters: voters - young}
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
	best, kept, distance := -1, -1, math.Inf(1)
	for _, i := range res.Survivors {
		s := live[i]
		s.role = RoleCombined
		if best < 0 || cands[i].Est.VarX < cands[best].Est.VarX {
			best = i
		}
		if s.id == e.selected {
			kept = i
		}
		distance = math.Min(distance, s.wire.Distance(s.est.FloorDelay()))
		switch s.wire.Last().Leap {
		case ntpclient.LeapInsert:
			ins++
		case ntpclient.LeapDelete:
			del++
		}
	}
	// The selected source stays while it is nearly as good as the best:
	// each source's variance dips right after its own sample, and equal
	// sources would otherwise take turns at every reply (the refid the
	// server hands out, and the log, would follow them). Nearly: its
	// standard deviation within √2 times the best's plus reselectSigma,
	// so that sources all far better than that do not take turns either
	// (only the reports follow the selected source; the clock follows
	// the combination).
	if kept >= 0 && math.Sqrt(cands[kept].Est.VarX) <= math.Sqrt(2*cands[best].Est.VarX)+reselectSigma {
		best = kept
	}
	live[best].role = RoleSelected
	e.selected = live[best].id
	leap, announced := discipline.LeapVote(ins, del, len(res.Survivors), real.UTC())
	if announced != e.leap {
		e.log.Info("leap second announcement", "leap", announced)
		e.leap = announced
	}
	est := res.Estimate
	e.est, e.estU, e.haveEst, e.distance = est, u, true, distance
	e.setYc(u, est.Y)
	return selected{res: res, waiting: !res.Consistent && len(cands) < voters, in: discipline.Input{
		OffsetS: est.X + applied, SigmaS: math.Sqrt(est.VarX),
		FreqError: est.Y, SigmaY: math.Sqrt(est.VarY),
		FreqPPM: e.clk.FrequencyPPM(), DistanceS: distance, Leap: leap,
	}}, nil
}

// logRoles logs the changes of role an operator cares about, once each:
// a new reference, a falseticker, a source lost or back.
func (e *Engine) logRoles() {
	for _, s := range e.sources {
		if s.role == s.logged {
			continue
		}
		was := s.logged
		s.logged = s.role
		name := s.wire.Name()
		switch {
		case s.role == RoleSelected:
			e.log.Info("source selected", "source", name, "id", s.id)
		case s.role == RoleFalseticker:
			e.log.Warn("falseticker: outside the majority", "source", name, "id", s.id)
		case s.role == RoleUnreachable:
			e.log.Warn("source unreachable", "source", name, "id", s.id)
		case was == RoleFalseticker || was == RoleUnreachable:
			e.log.Info("source back", "source", name, "id", s.id, "was", was.String(), "now", s.role.String())
		}
	}
}

// phiOf is Φ at filter time u.
func (e *Engine) phiOf(u float64) float64 { return e.phi + e.yc*(u-e.phiU) }

// setYc changes the combined frequency of the u-axis clock at filter time
// u.
func (e *Engine) setYc(u, yc float64) {
	e.phi, e.phiU, e.yc = e.phiOf(u), u, yc
}

// candidate is source s's candidate at filter time u for the selection:
// its own estimate, and, once there is a combined frequency, its phase as
// its Tracker carries it (see estimator.Tracker) for the comparison of the
// sources.
func (e *Engine) candidate(s *source, u float64) (selection.Candidate, bool) {
	est, ok := s.est.Predict(u)
	if !ok {
		return selection.Candidate{}, false
	}
	c := selection.Candidate{Est: est}
	if e.haveEst {
		if !s.track.Started() {
			s.track.Reset(est, u, e.phiOf(u))
		}
		s.track.Predict(u, e.phiOf(u), e.est.VarY, e.est.WanderSq)
		c.Phase = est
		c.Phase.X, c.Phase.VarX, c.Phase.CommonVarX = s.track.Phase()
	}
	varX := c.Est.VarX
	if c.Phase.VarX > 0 {
		varX = c.Phase.VarX
	}
	c.BoundS = s.wire.Distance(s.est.FloorDelay()) + boundSigmas*math.Sqrt(varX)
	return c, true
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
	if e.debugging() {
		e.log.Debug("update", "monotonic_seconds", now.Seconds(), "offset_seconds", sel.in.OffsetS, "sigma_seconds", sel.in.SigmaS,
			"freq_error_ppm", sel.in.FreqError*1e6, "sigma_freq_ppm", sel.in.SigmaY*1e6, "freq_ppm", act.FreqPPM,
			"slew_seconds", act.Slew.Seconds(), "slew_duration_seconds", act.SlewDuration.Seconds(),
			"step_seconds", act.Step.Seconds(), "survivors", len(sel.res.Survivors), "truechimers", len(sel.res.Truechimers))
	}
	e.execute(act, now, "")
}

// debugging reports whether the log takes debug records: their
// attributes (boxed, some computed) cost more than the rest of a sample.
func (e *Engine) debugging() bool { return e.log.Enabled(context.Background(), slog.LevelDebug) }

// execute carries out the discipline's actions at monotonic time now;
// reason, if any, says why (for OnClockChange).
func (e *Engine) execute(act discipline.Actions, now time.Duration, reason string) {
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
	applied := e.apply(u, now, reason)
	if act.Step == 0 {
		// While a step awaits its hooks an update only sets the
		// frequency: the offset is still there, the clock not corrected.
		if applied && e.pending == nil {
			e.setState(Synchronised)
			e.updated(-act.Slew.Seconds())
		}
		return
	}
	if e.pending == nil {
		e.pending = &StepProposal{Step: act.Step, Monotonic: now}
		e.log.Info("step proposed", "step_seconds", act.Step.Seconds())
		if e.onPropose != nil {
			e.onPropose(*e.pending)
			return
		}
		e.CommitStep() // its errors are recorded
	}
}

// apply makes a clock update and tells the estimators of the frequency
// change; it reports whether the update was made.
func (e *Engine) apply(u clock.Update, now time.Duration, reason string) bool {
	old := e.clk.FrequencyPPM()
	c := ClockChange{Kind: ChangeUpdate, Monotonic: now, Slew: u.Slew, SlewLeft: e.slewLeft(now), OldFreqPPM: old, Reason: reason}
	c.Time, _ = e.clk.Now()
	if u.Status != nil {
		st := *u.Status
		c.Status = &st
	}
	end, err := e.clk.Apply(u, now)
	c.NewFreqPPM, c.SlewDuration, c.Err = e.clk.FrequencyPPM(), end-now, err
	e.changed(c)
	if !e.check("clock update", err) {
		return false
	}
	dy := (e.clk.FrequencyPPM() - old) * 1e-6
	real, mono := e.clk.Now()
	uNow, _ := e.u(real, mono)
	for _, s := range e.sources {
		s.est.AddFrequency(uNow, dy)
	}
	e.est.Y += dy
	e.setYc(uNow, e.yc+dy)
	return true
}

// check records err (not nil) as the last error, and logs it when its
// cause differs from the last one's (a kernel that refuses every update
// is said once, not at every poll); it reports whether err is nil.
func (e *Engine) check(what string, err error) bool {
	if err == nil {
		return true
	}
	err = fmt.Errorf("%s: %w", what, err)
	if e.lastErr == nil || cause(e.lastErr).Error() != cause(err).Error() {
		e.log.Error("clock", "err", err)
	}
	e.lastErr = err
	e.errCount++
	return false
}

// cause is the innermost error err wraps.
func cause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

func (e *Engine) setState(s State) {
	if s != e.state {
		e.log.Info("state", "state", s.String(), "offset_seconds", e.est.X)
		c := ClockChange{Kind: ChangeState, OldState: e.state, NewState: s}
		c.Time, c.Monotonic = e.clk.Now()
		if s == Holdover && e.noSelect != nil {
			c.Reason = e.noSelect.Error()
		}
		e.state = s
		e.changed(c)
	}
}

// updated books a clock update that removes offsetS, for the status.
func (e *Engine) updated(offsetS float64) {
	real, mono := e.clk.Now()
	const memory = 16 // updates the running means remember (chrony's RMS offset is alike)
	switch {
	case e.lastUpdate.IsZero():
		e.meanSqOffset = offsetS * offsetS
	case e.meanInterval == 0:
		e.meanInterval = (mono - e.lastUpdateMono).Seconds()
		e.meanSqOffset += (offsetS*offsetS - e.meanSqOffset) / memory
	default:
		e.meanInterval += ((mono - e.lastUpdateMono).Seconds() - e.meanInterval) / memory
		e.meanSqOffset += (offsetS*offsetS - e.meanSqOffset) / memory
	}
	e.lastUpdate, e.lastUpdateMono, e.lastOffset = real, mono, offsetS
}

// ExternalStep tells the engine that someone else stepped the clock by
// delta (detected by stephook.Watcher): the step is booked as applied, so
// the estimates keep their time axis, and exchanges in flight are void;
// the next measurements show what offset the step left, which the
// discipline then corrects as any other.
func (e *Engine) ExternalStep(delta time.Duration) {
	e.log.Warn("the clock was stepped by another process", "step_seconds", delta.Seconds())
	e.clk.Stepped(delta)
	real, now := e.clk.Now()
	e.changed(ClockChange{Kind: ChangeExternalStep, Time: real.Add(-delta), Monotonic: now, Step: delta})
}

// KernelChanged tells the engine that another process changed the
// kernel's frequency correction to freqPPM (clock.Watched.Check saw it):
// the engine re-bases on it instead of fighting it (the estimators learn
// the change as a frequency step of the clock), and the slew in progress
// is dropped.
func (e *Engine) KernelChanged(freqPPM float64) {
	real, now := e.clk.Now()
	u, _ := e.u(real, now)
	old, left := e.clk.FrequencyPPM(), e.slewLeft(now)
	dy := e.clk.Resync(freqPPM, now) * 1e-6
	e.changed(ClockChange{Kind: ChangeKernel, Time: real, Monotonic: now, OldFreqPPM: old, NewFreqPPM: e.clk.FrequencyPPM(), SlewLeft: left})
	for _, s := range e.sources {
		s.est.AddFrequency(u, dy)
	}
	e.est.Y += dy
	e.setYc(u, e.yc+dy)
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
	err = e.clk.Step(act.Step, now)
	e.changed(ClockChange{Kind: ChangeStep, Time: real, Monotonic: now, Step: act.Step, Err: err})
	if err != nil {
		e.check("step", err)
		return StepResult{}, err
	}
	e.log.Info("clock stepped", "step_seconds", act.Step.Seconds(), "proposed_seconds", proposed.Seconds())
	_, now = e.clk.Now()
	if e.apply(clock.Update{FreqPPM: act.FreqPPM, Status: &act.Status}, now, "after the step") {
		e.setState(Synchronised)
		e.updated(-act.Step.Seconds())
	}
	return StepResult{Step: act.Step, Proposed: proposed}, nil
}

// CancelStep abandons the pending step for reason (a pre-step hook failed
// and the policy says not to step): the offset is slewed out instead, at
// the fastest rate allowed, or, with hold, the clock is left alone. The
// reason is logged and kept in the status (StepCancelled).
func (e *Engine) CancelStep(reason error, hold bool) error {
	if e.pending == nil {
		return ErrNoStepPending
	}
	e.pending = nil
	e.cancelled = reason
	real, now := e.clk.Now()
	sel, err := e.selectNow(real, now)
	if err != nil {
		sel.in = e.predicted(real, now)
	}
	e.log.Warn("step cancelled", "slew_instead", !hold, "reason", reason)
	var holdErr error
	if hold {
		holdErr = fmt.Errorf("step cancelled, clock held: %w", reason)
	}
	why := "step cancelled"
	if reason != nil {
		why += ": " + reason.Error()
	}
	e.execute(e.disc.CancelStep(sel.in, holdErr), now, why)
	return nil
}

// predicted is the discipline's input from the last combination,
// predicted to now.
func (e *Engine) predicted(real time.Time, now time.Duration) discipline.Input {
	u, applied := e.u(real, now)
	est := e.est.Predict(u - e.estU)
	return discipline.Input{
		OffsetS: est.X + applied, SigmaS: math.Sqrt(est.VarX),
		FreqError: est.Y, SigmaY: math.Sqrt(est.VarY),
		FreqPPM: e.clk.FrequencyPPM(), DistanceS: e.distance,
	}
}
