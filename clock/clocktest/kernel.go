// Package clocktest holds a fake Linux kernel clock for the tests of the
// packages that drive clock.Clock: it keeps the adjtimex state, applies
// the kernel's checks and records every call, so that nothing a test does
// can reach the host's clock.
package clocktest

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Kernel is a fake Linux kernel clock (a clock.Kernel): it records every
// adjtimex call as it was made (the Timex the Clock filled in), applies
// the modes to its own state with the kernel's checks (tick within
// 9000..11000 µs, ADJ_SETOFFSET's nanoseconds within [0, 1e9), the
// frequency clamped to ±500 ppm as MAXFREQ_SCALED does), and returns the
// state in tx as the kernel does. Nothing reaches the host's clock: its
// Now is a fixed instant plus a monotonic time the test moves.
type Kernel struct {
	Calls []unix.Timex
	State unix.Timex
	Steps time.Duration // sum of the ADJ_SETOFFSET steps
	Mono  time.Duration
	// Fail, when not nil, is returned by every call with modes (reads
	// succeed), and FailReads by reads too.
	Fail      error
	FailReads error
}

// NewKernel is a kernel at the nominal tick, unsynchronised, an hour
// after boot.
func NewKernel() *Kernel {
	return &Kernel{State: unix.Timex{Tick: 10000, Status: unix.STA_UNSYNC, Maxerror: 16_000_000, Esterror: 16_000_000}, Mono: time.Hour}
}

// Now is the fake kernel's time: a fixed instant plus Mono and the steps.
func (k *Kernel) Now() (time.Time, time.Duration) {
	return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).Add(k.Mono + k.Steps), k.Mono
}

// Adjtimex records tx, applies its modes and returns the state in tx.
func (k *Kernel) Adjtimex(tx *unix.Timex) (int, error) {
	k.Calls = append(k.Calls, *tx)
	if tx.Modes == 0 && k.FailReads != nil {
		return 0, k.FailReads
	}
	if tx.Modes != 0 && k.Fail != nil {
		return 0, k.Fail
	}
	m := tx.Modes
	if m&unix.ADJ_TICK != 0 && (tx.Tick < 9000 || tx.Tick > 11000) {
		return 0, syscall.EINVAL
	}
	if m&unix.ADJ_SETOFFSET != 0 {
		limit := int64(1e6)
		if m&unix.ADJ_NANO != 0 {
			limit = 1e9
		}
		if tx.Time.Usec < 0 || tx.Time.Usec >= limit {
			return 0, syscall.EINVAL
		}
		step := time.Duration(tx.Time.Sec) * time.Second
		if m&unix.ADJ_NANO != 0 {
			step += time.Duration(tx.Time.Usec)
		} else {
			step += time.Duration(tx.Time.Usec) * time.Microsecond
		}
		k.Steps += step
	}
	if m&unix.ADJ_FREQUENCY != 0 {
		k.State.Freq = min(max(tx.Freq, -500<<16), 500<<16)
	}
	if m&unix.ADJ_TICK != 0 {
		k.State.Tick = tx.Tick
	}
	if m&unix.ADJ_STATUS != 0 {
		k.State.Status = tx.Status
	}
	if m&unix.ADJ_OFFSET != 0 {
		k.State.Offset = tx.Offset
	}
	if m&unix.ADJ_MAXERROR != 0 {
		k.State.Maxerror = tx.Maxerror
	}
	if m&unix.ADJ_ESTERROR != 0 {
		k.State.Esterror = tx.Esterror
	}
	modes := tx.Modes
	*tx = k.State
	tx.Modes = modes
	if k.State.Status&unix.STA_UNSYNC != 0 {
		return unix.TIME_ERROR, nil
	}
	return unix.TIME_OK, nil
}

// Changes are the recorded calls with modes (the reads left out).
func (k *Kernel) Changes() []unix.Timex {
	var out []unix.Timex
	for _, c := range k.Calls {
		if c.Modes != 0 {
			out = append(out, c)
		}
	}
	return out
}
