package oneshot

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/audit"
	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/discipline"
	"github.com/ntptool/ntptool/ntpclient"
	"github.com/ntptool/ntptool/stephook"
)

// Server is one configured time source.
type Server struct {
	// Address is "host", "host:port" or "[v6]:port", as
	// ntpclient.QueryServers takes it; every address a name resolves to
	// is queried and votes.
	Address string
	// MaxAddrs, when more than 0, is how many of the name's addresses
	// are used (a pool's maxsources), in the resolver's order.
	MaxAddrs int
}

// Querier queries servers; ntpclient.QueryServers is one.
type Querier func(ctx context.Context, servers []string, opt ntpclient.ServersOptions) []ntpclient.Result

// SyncRequest is a one-shot synchronisation.
type SyncRequest struct {
	// Servers are the sources to query.
	Servers []Server
	// Query queries them; nil: ntpclient.QueryServers.
	Query Querier
	// QueryOptions are the exchanges' options (samples per address,
	// timeout).
	QueryOptions ntpclient.ServersOptions
	// Policy is the step policy ([step]): the correction is a step when
	// Policy.Decide says so for a first update, else a slew.
	Policy discipline.Policy
	// MaxSlewPPM caps the slew's extra rate ([clock] max_slew_rate_ppm);
	// 0: the kernel's limit, clock.MaxRatePPM.
	MaxSlewPPM float64
	// MaxWait is the longest slew Sync waits for (it must end the slew
	// itself before it exits); a correction that would take longer is
	// not made (ErrSlewTooLong). Default 2 minutes.
	MaxWait time.Duration
	// NoClockControl decides and reports, runs the hooks as dry runs, and
	// changes nothing.
	NoClockControl bool
	// Reason starts the hooks' and the journal's reason ("ntptool sync
	// --once").
	Reason string
}

// Action is the correction Sync chose.
type Action string

// Actions.
const (
	// ActionStep: the clock is stepped.
	ActionStep Action = "step"
	// ActionSlew: the offset is slewed out.
	ActionSlew Action = "slew"
	// ActionNone: the clock is left alone (no majority, the hooks said
	// hold, a slew too long to wait for).
	ActionNone Action = "none"
)

// SyncResult says what Sync found and did.
type SyncResult struct {
	Measurement
	// Action is the correction made (or, without clock control, that
	// would be made); Correction its size (positive: forward).
	Action     Action
	Correction time.Duration
	// Reason is the hooks' and the journal's reason.
	Reason string
	// SlewDuration is how long the slew runs (estimated without clock
	// control); Slewed the phase it added (less than Correction if it was
	// interrupted).
	SlewDuration, Slewed time.Duration
	// StepCancelled says why the pre-step hooks cancelled a step ("" if
	// they did not): the offset was slewed instead, or held.
	StepCancelled string
	// Pre and Post are the hooks' reports, when a step was planned.
	Pre, Post stephook.Report
	// Applied is set when the clock was changed.
	Applied bool
}

// Errors of Sync besides Measure's, ErrPostStep, and clock.ErrPermission.
var (
	// ErrHeld: the pre-step hooks cancelled the step and hooks.on_failure
	// is "hold": the clock was not changed.
	ErrHeld = errors.New("the pre-step hooks cancelled the step and the policy holds the clock")
	// ErrSlewTooLong: the slew would take longer than MaxWait; the clock
	// was not changed.
	ErrSlewTooLong = errors.New("the slew would take too long")
	// ErrInterrupted: the context ended during the slew, which was ended
	// then; the clock keeps the part slewed.
	ErrInterrupted = errors.New("slew interrupted")
)

// defaultMaxWait is SyncRequest.MaxWait's default.
const defaultMaxWait = 2 * time.Minute

// minSlew is the shortest slew, as the daemon's: a late end costs little.
const minSlew = time.Second

// Sync queries the servers, and when a majority agrees corrects the clock
// once by the combined offset: a step (with the pre- and post-step hooks,
// as Step) when the policy steps it, else a slew at the maximum rate that
// Sync waits for and ends. When the pre-step hooks cancel the step it
// slews instead, or, with hooks.on_failure = "hold", leaves the clock
// alone (ErrHeld). The result is filled in as far as Sync got; the error
// wraps ErrNoReply, ErrNoMajority, clock.ErrPermission, ErrHeld,
// ErrSlewTooLong, ErrInterrupted, ErrPostStep or the kernel's refusal.
func Sync(ctx context.Context, req SyncRequest, opt Options) (SyncResult, error) {
	res := SyncResult{Action: ActionNone}
	if err := opt.check(); err != nil {
		return res, err
	}
	if len(req.Servers) == 0 {
		return res, errors.New("no servers to query")
	}
	if req.MaxWait <= 0 {
		req.MaxWait = defaultMaxWait
	}
	if req.MaxSlewPPM <= 0 || req.MaxSlewPPM > clock.MaxRatePPM {
		req.MaxSlewPPM = clock.MaxRatePPM
	}
	if req.Reason == "" {
		req.Reason = "one-shot synchronisation"
	}
	if !req.NoClockControl && opt.CanSetTime != nil && !opt.CanSetTime() {
		return res, fmt.Errorf("synchronise the clock: %w", clock.ErrPermission)
	}
	query := req.Query
	if query == nil {
		query = ntpclient.QueryServers
	}
	names := make([]string, len(req.Servers))
	for i, s := range req.Servers {
		names[i] = s.Address
	}
	var err error
	res.Measurement, err = Measure(limit(query(ctx, names, req.QueryOptions), req.Servers))
	if err != nil {
		return res, err
	}
	res.Correction = res.Offset
	res.Reason = fmt.Sprintf("%s: offset %+.6f s (±%.6f s) from %d of %d servers", req.Reason,
		res.Offset.Seconds(), res.Sigma.Seconds(), res.Survivors, res.Voters)
	log := opt.Logger.With("reason", res.Reason)
	// Decide takes local − true, as the daemon's discipline; a first
	// update is exempt from the panic threshold.
	switch action, herr := req.Policy.Decide(-res.Offset.Seconds(), 0); action {
	case discipline.Hold:
		return res, herr
	case discipline.Step:
		done, err := syncStep(ctx, req, opt, &res)
		if done || err != nil {
			return res, err
		}
		log.Warn("step cancelled by the pre-step hooks: slewing instead", "why", res.StepCancelled)
	}
	return res, syncSlew(ctx, req, opt, &res)
}

// syncStep plans and makes the step; done is false when the hooks
// cancelled it and the offset is to be slewed instead.
func syncStep(ctx context.Context, req SyncRequest, opt Options, res *SyncResult) (done bool, err error) {
	res.Action = ActionStep
	old, _ := opt.Kernel.Now()
	pre := stephook.Event{Kind: stephook.PreStep, Step: res.Correction, Old: old, New: old.Add(res.Correction), Reason: res.Reason}
	if req.NoClockControl {
		res.Pre = opt.Hooks.DryRun(ctx, pre)
		post := pre
		post.Kind = stephook.PostStep
		res.Post = opt.Hooks.DryRun(ctx, post)
		return true, nil
	}
	res.Pre = opt.Hooks.Run(ctx, pre)
	sr := StepResult{Step: res.Correction, Old: old, New: old.Add(res.Correction), Pre: res.Pre}
	if res.Pre.Verdict != stephook.Proceed {
		res.StepCancelled = res.Pre.Reason
		if res.Pre.Hold {
			res.Action = ActionNone
			err := fmt.Errorf("%w: %s", ErrHeld, res.Pre.Reason)
			journal(opt, opt.Logger, refused(sr, res.Reason, err))
			return true, err
		}
		res.Action = ActionSlew
		return false, nil
	}
	clk, err := clock.New(opt.Kernel)
	if err == nil {
		var mono time.Duration
		old, mono = clk.Now()
		err = clk.Step(res.Correction, mono)
	}
	sr.Old, sr.New = old, old.Add(res.Correction)
	if err != nil {
		journal(opt, opt.Logger, refused(sr, res.Reason, err))
		return true, err
	}
	res.Applied = true
	opt.Logger.Info("clock stepped", "step_seconds", res.Correction.Seconds(), "reason", res.Reason)
	res.Post = opt.Hooks.Run(ctx, stephook.Event{Kind: stephook.PostStep, Step: res.Correction, Old: sr.Old, New: sr.New, Reason: res.Reason})
	journal(opt, opt.Logger, audit.StepEntry(sr.Old, res.Correction, res.Reason, res.Names(),
		append(res.Pre.AuditHooks(), res.Post.AuditHooks()...), true))
	if res.Post.Failed() {
		return true, fmt.Errorf("%w: %s", ErrPostStep, failures(res.Post))
	}
	return true, nil
}

// syncSlew slews the correction out at the maximum rate, waits for the
// slew to end and ends it.
func syncSlew(ctx context.Context, req SyncRequest, opt Options, res *SyncResult) error {
	res.Action = ActionSlew
	// The slew's length at the full rate r: |x|·(1 + r)/r (the clock
	// runs at 1 + r meanwhile), and at least minSlew.
	rate := req.MaxSlewPPM / 1e6
	est := max(clock.Seconds(math.Abs(res.Correction.Seconds())*(1+rate)/rate), minSlew)
	res.SlewDuration = est
	if est > req.MaxWait {
		res.Action = ActionNone
		return fmt.Errorf("%w: %+.6f s at %g ppm takes %v, more than the %v allowed (step it with ntptool step, or let the daemon slew it)",
			ErrSlewTooLong, res.Correction.Seconds(), req.MaxSlewPPM, est.Round(time.Second), req.MaxWait)
	}
	if req.NoClockControl {
		return nil
	}
	// The base frequency is the kernel's frequency field: a tick off
	// nominal is a slew a process left behind (see clock.PlanStartup),
	// and the end of this slew puts the nominal tick back.
	var tx unix.Timex
	if _, err := opt.Kernel.Adjtimex(&tx); err != nil {
		return fmt.Errorf("read the kernel clock: %w", err)
	}
	if tx.Tick != 0 && tx.Tick != 10000 {
		opt.Logger.Warn("the kernel's tick is off nominal (a slew left behind): the slew's end restores it", "tick_us", tx.Tick)
	}
	freqPPM := float64(tx.Freq) / 65536
	clk, err := clock.New(opt.Kernel)
	if err != nil {
		return err
	}
	start, mono := clk.Now()
	end, err := clk.Apply(clock.Update{FreqPPM: freqPPM, Slew: res.Correction, MaxRatePPM: req.MaxSlewPPM, MinDuration: minSlew}, mono)
	if err != nil {
		return err
	}
	res.Applied = true
	res.SlewDuration = end - mono
	opt.Logger.Info("slewing", "slew_seconds", res.Correction.Seconds(), "duration_seconds", res.SlewDuration.Seconds())
	journal(opt, opt.Logger, audit.SlewEntry(start, 0, res.Correction, res.Reason, res.Names(), true))
	// Wait for its end on the monotonic clock, which the slew speeds up
	// or slows down: each wait comes nearer, and a bounded number of
	// them gets there.
	var interrupted error
	for range 100 {
		_, now := clk.Now()
		if now >= end {
			break
		}
		if interrupted = opt.Wait(ctx, end-now); interrupted != nil {
			break
		}
	}
	// End it whatever happened: a slew left running would run the clock
	// up to 10 % off for ever.
	var endErr error
	for range 3 {
		_, now := clk.Now()
		if endErr = clk.EndSlew(now); endErr == nil {
			res.Slewed = clk.Applied(now)
			break
		}
	}
	switch {
	case endErr != nil:
		opt.Logger.Error("the slew could not be ended: the kernel clock still runs at the slew's rate", "err", endErr)
		return fmt.Errorf("end the slew (the kernel clock may still run at %+g ppm; ntptool run restores it at start): %w",
			freqPPM+math.Copysign(req.MaxSlewPPM, res.Correction.Seconds()), endErr)
	case interrupted != nil:
		return fmt.Errorf("%w after %+.6f s of %+.6f s: %w", ErrInterrupted, res.Slewed.Seconds(), res.Correction.Seconds(), interrupted)
	}
	return nil
}

// limit keeps, of the results (in the order of servers, then of each
// name's addresses), at most MaxAddrs addresses per server, and each
// address once: an address must not vote twice.
func limit(results []ntpclient.Result, servers []Server) []ntpclient.Result {
	maxOf := map[string]int{}
	for _, s := range servers {
		maxOf[s.Address] = s.MaxAddrs
	}
	seen := map[netip.AddrPort]bool{}
	count := map[string]int{}
	var out []ntpclient.Result
	for _, r := range results {
		if r.Address.IsValid() {
			if seen[r.Address] {
				continue
			}
			seen[r.Address] = true
		}
		if n := maxOf[r.Server]; n > 0 && count[r.Server] >= n {
			continue
		}
		count[r.Server]++
		out = append(out, r)
	}
	return out
}
