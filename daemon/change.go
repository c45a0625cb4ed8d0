package daemon

import (
	"time"

	"github.com/ntptool/ntptool/clock"
)

// ChangeKind is what a ClockChange records.
type ChangeKind int

// The kinds of clock change.
const (
	// ChangeUpdate is one clock update, a single adjtimex call: the
	// frequency correction, a new slew (or the end of the one in
	// progress) and the kernel status together; also the drift file's
	// frequency applied at start (Reason "drift file").
	ChangeUpdate ChangeKind = iota + 1
	// ChangeStep is a step the engine made (CommitStep).
	ChangeStep
	// ChangeState is a change of the synchronisation state.
	ChangeState
	// ChangeExternalStep is a step made by another process, booked by
	// ExternalStep.
	ChangeExternalStep
	// ChangeKernel is a change of the frequency correction made by
	// another process, booked by KernelChanged.
	ChangeKernel
)

var changeNames = [...]string{"", "update", "step", "state", "external-step", "kernel"}

func (k ChangeKind) String() string {
	if k < 0 || int(k) >= len(changeNames) {
		return "change(?)"
	}
	return changeNames[k]
}

// ClockChange is one change of the clock that the engine made, tried to
// make (Err set), or booked (made by another process); the engine reports
// it through Options.OnClockChange, for the audit journal and the metrics.
type ClockChange struct {
	// Kind is what changed.
	Kind ChangeKind
	// Time is the clock's reading just before the change, Monotonic the
	// engine's monotonic time then.
	Time      time.Time
	Monotonic time.Duration
	// Step is the step (ChangeStep, ChangeExternalStep; positive: the
	// clock moved forward).
	Step time.Duration
	// Slew is the phase of the slew a ChangeUpdate started (positive:
	// forward; 0 none), to be added over SlewDuration; SlewLeft is the
	// phase the slew it replaced (or ended) still had to add.
	Slew, SlewDuration, SlewLeft time.Duration
	// OldFreqPPM and NewFreqPPM are the frequency correction before and
	// after (ChangeUpdate, ChangeKernel).
	OldFreqPPM, NewFreqPPM float64
	// Status is the kernel status a ChangeUpdate handed over; nil if none.
	Status *clock.Status
	// OldState and NewState are the states of a ChangeState.
	OldState, NewState State
	// Sources are the ids of the sources combined into the estimate behind
	// the change, the selected one first; none for changes by others.
	Sources []int
	// Reason says why, when the kind alone does not: "drift file",
	// "after the step", "step cancelled: …", or why the sources were
	// lost (ChangeState to Holdover).
	Reason string
	// Err is the kernel's refusal: the change was not made.
	Err error
}

// changed completes c (the sources behind a change the engine made) and
// reports it.
func (e *Engine) changed(c ClockChange) {
	if e.onChange == nil {
		return
	}
	if c.Kind != ChangeExternalStep && c.Kind != ChangeKernel {
		for _, s := range e.sources {
			switch s.role {
			case RoleSelected:
				c.Sources = append([]int{s.id}, c.Sources...)
			case RoleCombined:
				c.Sources = append(c.Sources, s.id)
			}
		}
	}
	e.onChange(c)
}

// slewLeft is the phase the slew in progress has still to add after
// monotonic time now.
func (e *Engine) slewLeft(now time.Duration) time.Duration {
	if slewing, end := e.clk.SlewEnd(); slewing && end > now {
		return e.clk.Applied(end) - e.clk.Applied(now)
	}
	return 0
}
