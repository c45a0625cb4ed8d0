package oneshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ntptool/ntptool/audit"
	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/stephook"
)

// Hooks runs the hooks of a clock-step event; *stephook.Runner is one.
type Hooks interface {
	// Run runs the event's hooks and returns their report; for a PreStep
	// the step is made only if its verdict is stephook.Proceed.
	Run(ctx context.Context, ev stephook.Event) stephook.Report
	// DryRun reports what Run would do, doing nothing.
	DryRun(ctx context.Context, ev stephook.Event) stephook.Report
}

// Journal receives the audit entry of each change made (or refused);
// *audit.Journal is one.
type Journal interface {
	Append(e audit.Entry) error
}

// Options are the dependencies of Step and Sync.
type Options struct {
	// Kernel is the kernel clock: clock.Linux to change this host's clock
	// (CAP_SYS_TIME), a simulated kernel in tests. A dry run only reads
	// it: clock.HostReadOnly is enough. Required.
	Kernel clock.Kernel
	// Hooks runs the pre-step and post-step hooks. Required.
	Hooks Hooks
	// CanSetTime, when not nil, is asked before any hook runs for a real
	// change: false fails with clock.ErrPermission at once, so that no
	// DHCP client is restarted for a step the kernel would refuse.
	CanSetTime func() bool
	// Journal, when not nil, receives one entry per change (and per step
	// the hooks or the kernel refused); its errors are logged, not
	// returned: the change is made by then.
	Journal Journal
	// Wait waits for d of monotonic time, or until ctx ends (then it
	// returns ctx's error); Sync uses it while a slew runs. Default: a
	// timer.
	Wait func(ctx context.Context, d time.Duration) error
	// Logger receives what is done; nil discards.
	Logger *slog.Logger
}

func (o *Options) check() error {
	if o.Kernel == nil || o.Hooks == nil {
		return errors.New("oneshot: Options needs a Kernel and Hooks")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Wait == nil {
		o.Wait = timerWait
	}
	return nil
}

// timerWait is the real Wait: a timer on the monotonic clock (Go's timers
// do not move with the wall clock).
func timerWait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Errors of Step and Sync, for errors.Is. Besides these, a kernel that
// refuses the change for want of CAP_SYS_TIME gives clock.ErrPermission.
var (
	// ErrRequest: the request is not one that can be made (both or
	// neither of By and To, a zero step, a time before 1970).
	ErrRequest = errors.New("bad step request")
	// ErrAborted: the pre-step hooks said abort (their policy, and the
	// failure, are in the report): the clock was not stepped.
	ErrAborted = errors.New("the pre-step hooks cancelled the step")
	// ErrPostStep: the clock was stepped, but a post-step hook or renewal
	// failed (an address may expire: see the report).
	ErrPostStep = errors.New("the clock was stepped, but a post-step hook failed")
)

// StepRequest is a manual step: the clock moved By a duration, or set To a
// time (exactly one of them).
type StepRequest struct {
	// By is the step (positive: forward); it is made exactly.
	By time.Duration
	// To, when not zero, is the time to set the clock to: the step is
	// To − now, read just before the step is made (after the pre-step
	// hooks, which may take seconds).
	To time.Time
	// DryRun reports the hooks that would run and the step that would be
	// made, and changes nothing.
	DryRun bool
	// Reason is NTPTOOL_REASON for the hooks and the journal's reason
	// ("ntptool step --by -1h").
	Reason string
}

// StepResult says what Step did.
type StepResult struct {
	// Step is the step made (or, in a dry run or when refused, the one
	// that would have been made); Old and New are the clock's readings
	// just before it and the time it moved to.
	Step     time.Duration
	Old, New time.Time
	// Pre and Post are the hooks' reports (Post is empty when the clock
	// was not stepped, except in a dry run).
	Pre, Post stephook.Report
	// Stepped is set when the clock was stepped.
	Stepped bool
}

// Check reports a request that cannot be made (wrapping ErrRequest):
// both or neither of By and To, or To before 1970. Step checks it first;
// a caller may check before it takes the clock.
func (req StepRequest) Check() error {
	switch {
	case req.By != 0 && !req.To.IsZero():
		return fmt.Errorf("%w: a step by a duration or to a time, not both", ErrRequest)
	case req.By == 0 && req.To.IsZero():
		return fmt.Errorf("%w: no step (a step by 0 changes nothing)", ErrRequest)
	case !req.To.IsZero() && req.To.Before(minTime):
		return fmt.Errorf("%w: %s is before 1970: the kernel refuses it", ErrRequest, req.To.UTC().Format(time.RFC3339))
	}
	return nil
}

// minTime is the earliest time a step may set: the kernel refuses a
// negative CLOCK_REALTIME.
var minTime = time.Unix(0, 0)

// Step makes a manual step: the pre-step hooks (per the policy of the
// hooks' configuration), the step through clock.Clock.Step (one
// clock_adjtime with ADJ_SETOFFSET), then the post-step hooks; the journal
// gets one step entry with every hook run. A dry run runs Hooks.DryRun for
// both events and returns what would be done. The returned error wraps
// ErrRequest, clock.ErrPermission, ErrAborted (not stepped), the kernel's
// refusal, or ErrPostStep (stepped); the result is filled in as far as
// Step got.
func Step(ctx context.Context, req StepRequest, opt Options) (StepResult, error) {
	if err := opt.check(); err != nil {
		return StepResult{}, err
	}
	if err := req.Check(); err != nil {
		return StepResult{}, err
	}
	if req.Reason == "" {
		req.Reason = "manual step"
	}
	log := opt.Logger.With("reason", req.Reason)
	plan := func() StepResult {
		old, _ := opt.Kernel.Now()
		step := req.By
		if !req.To.IsZero() {
			step = req.To.Sub(old)
		}
		return StepResult{Step: step, Old: old, New: old.Add(step)}
	}
	res := plan()
	pre := stephook.Event{Kind: stephook.PreStep, Step: res.Step, Old: res.Old, New: res.New, Reason: req.Reason}
	if req.DryRun {
		res.Pre = opt.Hooks.DryRun(ctx, pre)
		post := pre
		post.Kind = stephook.PostStep
		res.Post = opt.Hooks.DryRun(ctx, post)
		return res, nil
	}
	if opt.CanSetTime != nil && !opt.CanSetTime() {
		return res, fmt.Errorf("step the clock by %v: %w", res.Step, clock.ErrPermission)
	}
	res.Pre = opt.Hooks.Run(ctx, pre)
	if res.Pre.Verdict != stephook.Proceed {
		err := fmt.Errorf("%w: %s", ErrAborted, res.Pre.Reason)
		journal(opt, log, refused(res, req.Reason, err))
		return res, err
	}
	// Take the clock only now: the hooks may have taken seconds, and a
	// Clock carries the kernel's frequency as it was when made.
	planned := res.Pre
	res = plan()
	res.Pre = planned
	clk, err := clock.New(opt.Kernel)
	if err == nil {
		_, mono := clk.Now()
		err = clk.Step(res.Step, mono)
	}
	if err != nil {
		journal(opt, log, refused(res, req.Reason, err))
		return res, err
	}
	res.Stepped = true
	log.Info("clock stepped", "step_seconds", res.Step.Seconds(), "old", res.Old, "new", res.New)
	res.Post = opt.Hooks.Run(ctx, stephook.Event{Kind: stephook.PostStep, Step: res.Step, Old: res.Old, New: res.New, Reason: req.Reason})
	journal(opt, log, audit.StepEntry(res.Old, res.Step, req.Reason, nil, append(res.Pre.AuditHooks(), res.Post.AuditHooks()...), true))
	if res.Post.Failed() {
		return res, fmt.Errorf("%w: %s", ErrPostStep, failures(res.Post))
	}
	return res, nil
}

// refused is the journal entry of a step that was not made.
func refused(res StepResult, reason string, why error) audit.Entry {
	e := audit.StepEntry(res.Old, res.Step, reason, nil, res.Pre.AuditHooks(), false)
	e.Error = why.Error()
	return e
}

func journal(opt Options, log *slog.Logger, e audit.Entry) {
	if opt.Journal == nil {
		return
	}
	if err := opt.Journal.Append(e); err != nil {
		log.Error("audit journal: entry not written", "kind", string(e.Kind), "err", err)
	}
}

// failures lists the failed results of a report.
func failures(rep stephook.Report) string {
	var s string
	for _, r := range rep.Results {
		if r.Outcome != stephook.Failed && r.Outcome != stephook.TimedOut {
			continue
		}
		if s != "" {
			s += "; "
		}
		s += fmt.Sprintf("%s %s %s", r.Hook, r.Name, r.Outcome)
		if r.Err != nil {
			s += ": " + r.Err.Error()
		}
	}
	return s
}
