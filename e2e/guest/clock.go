package main

import (
	"fmt"
	"math"
	"time"

	"github.com/ntptool/ntptool/e2e/guard"
	"golang.org/x/sys/unix"
)

// kernel is the part of the kernel clock API the guest changes; unixKernel
// is the real one, tests record calls instead.
type kernel interface {
	ClockSettime(ts *unix.Timespec) error
	Adjtimex(tx *unix.Timex) (int, error)
	Realtime() unix.Timespec
}

type unixKernel struct{}

func (unixKernel) ClockSettime(ts *unix.Timespec) error {
	return unix.ClockSettime(unix.CLOCK_REALTIME, ts)
}

func (unixKernel) Adjtimex(tx *unix.Timex) (int, error) { return unix.Adjtimex(tx) }

func (unixKernel) Realtime() unix.Timespec {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &ts)
	return ts
}

// guestClock changes the guest's clock, each time only after guard.Check
// has proven that this is the e2e guest.
type guestClock struct {
	sys guard.System
	k   kernel
}

func newClock(sys guard.System, k kernel) *guestClock { return &guestClock{sys: sys, k: k} }

// Step moves CLOCK_REALTIME by d (positive: forward) with clock_settime.
func (c *guestClock) Step(d time.Duration) error {
	if err := guard.Check(c.sys); err != nil {
		return err
	}
	now := c.k.Realtime()
	ts := unix.NsecToTimespec(now.Nano() + d.Nanoseconds())
	if err := c.k.ClockSettime(&ts); err != nil {
		return fmt.Errorf("clock_settime(%+v): %w", d, err)
	}
	return nil
}

// SetFrequency sets the kernel frequency correction (ADJ_FREQUENCY, ppm,
// positive: the clock runs faster), within the kernel's ±500 ppm.
func (c *guestClock) SetFrequency(ppm float64) error {
	if math.IsNaN(ppm) || math.Abs(ppm) > 500 {
		return fmt.Errorf("frequency %v ppm outside ±500", ppm)
	}
	if err := guard.Check(c.sys); err != nil {
		return err
	}
	tx := unix.Timex{Modes: unix.ADJ_FREQUENCY, Freq: int64(math.Round(ppm * 65536))}
	if _, err := c.k.Adjtimex(&tx); err != nil {
		return fmt.Errorf("adjtimex(ADJ_FREQUENCY %+.3f ppm): %w", ppm, err)
	}
	return nil
}

// timexState is a read-only adjtimex (modes 0): allowed anywhere.
type timexState struct {
	State       int     // TIME_OK (0) ... TIME_ERROR (5)
	FreqPPM     float64 // tick and freq together, ppm
	Status      int32
	MaxErrorUS  int64
	EstErrorUS  int64
	TickUS      int64
	OffsetUS    int64
	ConstantLog int64
}

// stateNames are adjtimex's return values.
var stateNames = []string{"TIME_OK", "TIME_INS", "TIME_DEL", "TIME_OOP", "TIME_WAIT", "TIME_ERROR"}

func stateName(s int) string {
	if s >= 0 && s < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state %d", s)
}

func readTimex() (timexState, error) {
	var tx unix.Timex // Modes 0: read only
	st, err := unix.Adjtimex(&tx)
	if err != nil {
		return timexState{}, fmt.Errorf("adjtimex (read): %w", err)
	}
	off := tx.Offset
	if tx.Status&unix.STA_NANO != 0 {
		off /= 1000
	}
	return timexState{
		State:       st,
		FreqPPM:     float64(tx.Freq)/65536 + float64(tx.Tick-10000)*100,
		Status:      tx.Status,
		MaxErrorUS:  tx.Maxerror,
		EstErrorUS:  tx.Esterror,
		TickUS:      tx.Tick,
		OffsetUS:    off,
		ConstantLog: tx.Constant,
	}, nil
}
