package clock

import (
	"math"
	"time"

	"golang.org/x/sys/unix"
)

// Null is a Kernel that never changes the clock underneath it, like
// chronyd -x: it reads time from base and keeps the adjtimex state the
// engine sets (frequency, tick, status, errors) to itself, together with a
// virtual clock that runs as if that state were applied. The engine then
// works unchanged, and its status shows what it would do to the clock.
//
// As in the kernel, both of its clocks run at the corrected rate: the
// monotonic clock is base's plus the phase the virtual rate corrections
// have accumulated, and the realtime clock adds the virtual steps too.
// A driver converts base's timestamps (kernel receive timestamps) with
// Virtual, and the engine's deadlines for timers on base's monotonic clock
// with BaseMonotonic.
type Null struct {
	base     Kernel
	tx       unix.Timex    // the virtual kernel state
	ratePart time.Duration // phase from rate corrections up to baseMono0
	steps    time.Duration // phase from steps
	mono0    time.Duration // base monotonic time of the last rate change
	ratePPM  float64       // virtual rate correction (tick and frequency)
}

// NewNull returns a Null over base (a read-only view of the host clock, or
// a simulated kernel in tests). It starts with a nominal tick and no
// frequency correction, unsynchronised.
func NewNull(base Kernel) *Null {
	_, mono := base.Now()
	return &Null{
		base:  base,
		mono0: mono,
		tx:    unix.Timex{Tick: nominalTickUS, Status: unix.STA_UNSYNC, Maxerror: maxErrorUS, Esterror: maxErrorUS},
	}
}

// Now returns the virtual realtime and monotonic clocks.
func (n *Null) Now() (time.Time, time.Duration) {
	return n.Virtual(n.base.Now())
}

// Virtual converts readings of base's clocks (such as a kernel receive
// timestamp) to the virtual clocks.
func (n *Null) Virtual(real time.Time, mono time.Duration) (time.Time, time.Duration) {
	rate := n.rateAt(mono)
	return real.Add(rate + n.steps), mono + rate
}

// BaseMonotonic returns the base monotonic time at which the virtual
// monotonic clock reaches m, at the virtual rate in force now.
func (n *Null) BaseMonotonic(m time.Duration) time.Duration {
	// virtual(b) = b + ratePart + ratePPM·1e-6·(b − mono0); solve for b.
	k := 1 + n.ratePPM*1e-6
	b := float64(m-n.ratePart-n.mono0)/k + float64(n.mono0)
	return time.Duration(math.Ceil(b))
}

// rateAt is the phase the rate corrections have added by base monotonic
// time mono.
func (n *Null) rateAt(mono time.Duration) time.Duration {
	return n.ratePart + time.Duration(n.ratePPM*1e-6*float64(mono-n.mono0))
}

// Adjtimex applies tx's modes to the virtual state only. It accepts what
// the engine uses (frequency, tick, status, max/est error, offset steps)
// and ignores the PLL and adjtime modes.
func (n *Null) Adjtimex(tx *unix.Timex) (int, error) {
	_, mono := n.base.Now()
	if tx.Modes&unix.ADJ_OFFSET_SINGLESHOT != unix.ADJ_OFFSET_SINGLESHOT {
		// Check first, as the kernel does: a rejected call changes nothing.
		if tx.Modes&unix.ADJ_TICK != 0 && (tx.Tick < 9000 || tx.Tick > 11000) {
			return 0, unix.EINVAL
		}
		// Fold the phase so far in before the rate changes.
		n.ratePart, n.mono0 = n.rateAt(mono), mono
		if tx.Modes&unix.ADJ_FREQUENCY != 0 {
			n.tx.Freq = min(max(tx.Freq, -MaxFreqPPM*65536), MaxFreqPPM*65536)
		}
		if tx.Modes&unix.ADJ_TICK != 0 {
			n.tx.Tick = tx.Tick
		}
		if tx.Modes&unix.ADJ_STATUS != 0 {
			n.tx.Status = tx.Status
		}
		if tx.Modes&unix.ADJ_MAXERROR != 0 {
			n.tx.Maxerror = min(max(tx.Maxerror, 0), maxErrorUS)
		}
		if tx.Modes&unix.ADJ_ESTERROR != 0 {
			n.tx.Esterror = min(max(tx.Esterror, 0), maxErrorUS)
		}
		if tx.Modes&unix.ADJ_SETOFFSET != 0 {
			step := time.Duration(tx.Time.Sec) * time.Second
			if tx.Modes&unix.ADJ_NANO != 0 {
				step += time.Duration(tx.Time.Usec)
			} else {
				step += time.Duration(tx.Time.Usec) * time.Microsecond
			}
			n.steps += step
		}
		n.ratePPM = float64(n.tx.Tick-nominalTickUS)*ppmPerTickUS + float64(n.tx.Freq)/65536
	}
	*tx = n.tx
	if n.tx.Status&unix.STA_UNSYNC != 0 {
		return unix.TIME_ERROR, nil
	}
	return unix.TIME_OK, nil
}
