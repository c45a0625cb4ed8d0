package discipline

import (
	"fmt"
	"math"
	"time"
)

// Policy is the step policy and slew limit (config [step] and [clock]).
type Policy struct {
	// StepThreshold: larger offsets may be stepped (0 disables stepping).
	StepThreshold time.Duration
	// StepLimit: steps are allowed during the first StepLimit clock
	// updates only; -1 means always.
	StepLimit int
	// Panic: larger offsets are not corrected at all (0 disables), except
	// at the first update, like ntpd -g: a host that starts with a wrong
	// clock (no RTC) is set right once.
	Panic time.Duration
	// SlewOnly never steps.
	SlewOnly bool
	// MaxSlewPPM caps the slew rate.
	MaxSlewPPM float64
}

// Action is what to do about the clock's offset.
type Action int

// Actions.
const (
	// Slew the offset out.
	Slew Action = iota
	// Step the clock.
	Step
	// Hold: the offset is over the panic threshold; change nothing and
	// tell the operator.
	Hold
)

// Decide chooses how to remove offset (local − true, seconds) at the
// update numbered update (0 for the first).
func (p Policy) Decide(offset float64, update int) (Action, error) {
	abs := time.Duration(math.Abs(offset) * 1e9)
	if p.Panic > 0 && abs > p.Panic && update > 0 {
		return Hold, fmt.Errorf("offset %.3f s exceeds the panic threshold %v: not correcting; check the sources, or step the clock by hand", offset, p.Panic)
	}
	stepAllowed := !p.SlewOnly && p.StepThreshold > 0 && (p.StepLimit < 0 || update < p.StepLimit)
	if stepAllowed && abs > p.StepThreshold {
		return Step, nil
	}
	return Slew, nil
}
