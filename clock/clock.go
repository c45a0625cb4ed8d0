// Package clock is the only door to the kernel clock. Everything that reads
// the time for synchronisation, or changes the clock, goes through a Kernel:
// the Linux system calls (unix), no control at all (null, like chronyd -x),
// or the simulator's emulation of the Linux kernel (internal/sim), so that
// the unchanged daemon code runs for simulated hours in milliseconds.
//
// Sign conventions: a frequency in ppm is the correction the kernel applies
// (positive speeds the clock up, as adjtimex's freq field); a step or slew
// delta is added to the clock (positive moves it forward).
package clock

import (
	"time"

	"golang.org/x/sys/unix"
)

// Kernel is the kernel clock interface as Linux offers it.
type Kernel interface {
	// Adjtimex is clock_adjtime(CLOCK_REALTIME, tx): it applies tx.Modes
	// and returns the clock state (TIME_OK, TIME_INS, ..., TIME_ERROR)
	// with tx filled in. Modes 0 only reads.
	Adjtimex(tx *unix.Timex) (state int, err error)
	// Now reads CLOCK_REALTIME and CLOCK_MONOTONIC together. Monotonic
	// time runs at the same rate as the realtime clock but is never
	// stepped; timers run on it.
	Now() (realtime time.Time, monotonic time.Duration)
}
