package discipline

import (
	"math"
	"time"

	"github.com/ntptool/ntptool/clock"
)

// Config configures a Discipline.
type Config struct {
	// Policy is the step policy.
	Policy Policy
	// MaxSlewPPM caps the extra rate of a slew (ppm).
	MaxSlewPPM float64
	// MaxFreqPPM bounds the frequency correction (ppm).
	MaxFreqPPM float64
}

// Input is the combined estimate of the clock at the time of an update.
// Offsets are local − true (> 0: the clock is ahead).
type Input struct {
	// OffsetS is the clock's offset now (s) and SigmaS its standard
	// deviation.
	OffsetS, SigmaS float64
	// FreqError is the clock's frequency error as it is corrected now
	// (s/s; > 0: it runs fast) and SigmaY its standard deviation.
	FreqError, SigmaY float64
	// FreqPPM is the frequency correction in force (ppm).
	FreqPPM float64
	// DistanceS is the root distance of the selection (s): what bounds
	// the error besides the estimate's own deviation.
	DistanceS float64
	// Leap is the leap second to announce to the kernel (+1, −1 or 0),
	// from LeapVote.
	Leap int
}

// Actions are what an update does to the clock.
type Actions struct {
	// FreqPPM is the frequency correction to set (ppm).
	FreqPPM float64
	// Slew is the phase to add to the clock (positive: forward), over at
	// least SlewDuration; zero ends any slew in progress.
	Slew, SlewDuration time.Duration
	// MaxSlewPPM caps the slew's extra rate.
	MaxSlewPPM float64
	// Step, when not zero, is a step proposal (positive: forward): the
	// engine's owner runs the pre-step hooks and then commits it with
	// CommitStep, which gives the step valid at that moment, or cancels it
	// with CancelStep. FreqPPM and Status apply at once; Slew is zero.
	Step time.Duration
	// Status is the synchronisation status for the kernel.
	Status clock.Status
	// Hold, when not nil, says why the clock is left alone (the offset is
	// beyond the panic threshold); the other fields are then zero.
	Hold error
}

// The smooth-correction rule (see slewDuration).
const (
	// slewTimeRatio times the estimate's time constant σx/σy is the time a
	// correction of ordinary size is spread over.
	slewTimeRatio = 0.5
	// significant: an offset beyond this many of its standard deviations
	// is no noise, and is corrected proportionally faster.
	significant = 3.0
	// minSlew is the shortest slew: a timer firing late costs little.
	minSlew = time.Second
	// maxSlew is the longest: the estimate's time constant is bounded by
	// the wander, but not when the wander learnt is tiny.
	maxSlew = 4096 * time.Second
)

// Discipline holds the discipline's state: how many clock updates it has
// made (the step limit counts them) and whether a step is pending.
type Discipline struct {
	cfg     Config
	updates int
	pending bool
}

// New returns a discipline before its first update.
func New(cfg Config) *Discipline {
	if cfg.MaxFreqPPM <= 0 {
		cfg.MaxFreqPPM = clock.MaxCorrectionPPM
	}
	if cfg.MaxSlewPPM <= 0 {
		cfg.MaxSlewPPM = clock.MaxRatePPM
	}
	return &Discipline{cfg: cfg}
}

// Updates counts the clock updates made (a committed step counts once).
func (d *Discipline) Updates() int { return d.updates }

// StepPending reports whether a step proposal awaits CommitStep or
// CancelStep.
func (d *Discipline) StepPending() bool { return d.pending }

// Update turns an estimate into actions. While a step is pending it
// changes only the frequency and the status: the step will remove the
// offset.
func (d *Discipline) Update(in Input) Actions {
	act := d.base(in)
	if d.pending {
		// Not synchronised until the step is made.
		act.Status.Synchronized = false
		return act
	}
	action, err := d.cfg.Policy.Decide(in.OffsetS, d.updates)
	switch action {
	case Hold:
		return Actions{Hold: err}
	case Step:
		d.pending = true
		act.Step = clock.Seconds(-in.OffsetS)
		act.Status.Synchronized = false
		return act
	}
	d.updates++
	d.slew(&act, in, d.updates == 1)
	return act
}

// CommitStep settles the pending step with the estimate valid now: it
// returns the actions with Step set to the step to make (never zero).
func (d *Discipline) CommitStep(in Input) Actions {
	act := d.base(in)
	d.pending = false
	d.updates++
	act.Step = clock.Seconds(-in.OffsetS)
	if act.Step == 0 {
		act.Step = 1 // a step of zero means none; 1 ns is nothing
	}
	return act
}

// CancelStep settles the pending step without stepping (a pre-step hook
// failed and the policy aborts the step): the offset is slewed out at
// the fastest rate allowed, or, with hold, left alone with the reason.
func (d *Discipline) CancelStep(in Input, hold error) Actions {
	d.pending = false
	if hold != nil {
		return Actions{Hold: hold}
	}
	act := d.base(in)
	d.updates++
	d.slew(&act, in, true)
	return act
}

// base is the frequency and status part of an update.
func (d *Discipline) base(in Input) Actions {
	return Actions{
		FreqPPM:    Frequency(in.FreqPPM, in.FreqError, d.cfg.MaxFreqPPM),
		MaxSlewPPM: d.cfg.MaxSlewPPM,
		Status: clock.Status{
			Synchronized: true,
			EstError:     clock.Seconds(in.SigmaS),
			MaxError:     clock.Seconds(3*in.SigmaS + in.DistanceS),
			Leap:         in.Leap,
		},
	}
}

// slew plans the removal of the offset; fast removes it as fast as the
// rate cap allows (start-up, a cancelled step).
func (d *Discipline) slew(act *Actions, in Input, fast bool) {
	act.Slew = clock.Seconds(-in.OffsetS)
	act.SlewDuration = minSlew
	if !fast {
		act.SlewDuration = slewDuration(in.OffsetS, in.SigmaS, in.SigmaY)
	}
}

// slewDuration is the time over which a correction of offset is spread,
// from the estimate's deviations: sx of the phase (s) and sy of the
// frequency (s/s).
//
// A correction x slewed linearly over D costs x²·D/3 in squared phase
// error (the clock keeps part of the offset for a while) and x²/D in
// squared rate error (programs that time intervals see the slew). With
// the two weighed as the estimator weighs them, σx² against σy², the sum
// is least for D = √3·σx/σy, a constant: the estimate's own time
// constant (for a steady Kalman filter σx/σy = (R/q)^¼, its averaging
// time). So an ordinary correction moves the clock's rate by about
// |x|/D ≈ σy: no more than the frequency is uncertain anyway. An offset
// of many σx is no noise but a real error (start-up, a server that moved,
// holdover): it is corrected proportionally faster, as chrony's
// corrtimeratio does, so its rate grows as x². Early on σy is large and
// D short, so start-up corrections are fast by the same rule.
func slewDuration(offset, sx, sy float64) time.Duration {
	if !(sx > 0) || !(sy > 0) {
		return minSlew
	}
	d := slewTimeRatio * sx / sy
	if x := math.Abs(offset); x > significant*sx {
		d *= significant * sx / x
	}
	return min(max(clock.Seconds(d), minSlew), maxSlew)
}

// Frequency returns the frequency correction (ppm) that cancels the
// estimated frequency error y (s/s) of a clock corrected by currentPPM,
// within ±maxPPM.
func Frequency(currentPPM, y, maxPPM float64) float64 {
	return math.Max(-maxPPM, math.Min(maxPPM, currentPPM-y*1e6))
}

// LeapVote returns the leap second to hand to the kernel (+1 insert, −1
// delete, 0 none) from the truechimers' leap indicators (ins and del of
// n announce one) at UTC time utc, and the announcement itself. A strict
// majority must announce it, and it is armed only on the last day of a
// month: the leap indicator warns of a leap at the end of the current
// month (RFC 5905 section 7.3), servers announce it for days or weeks,
// and the kernel applies STA_INS/STA_DEL at the end of the current day.
func LeapVote(ins, del, n int, utc time.Time) (armed, announced int) {
	switch {
	case 2*ins > n:
		announced = 1
	case 2*del > n:
		announced = -1
	}
	if utc.AddDate(0, 0, 1).Month() == utc.Month() {
		return 0, announced // not the last day of the month yet
	}
	return announced, announced
}
