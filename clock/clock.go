// Package clock is the only door to the kernel clock. Everything that reads
// the time for synchronisation, or changes the clock, goes through a Clock
// over a Kernel: the simulator's emulation of Linux (internal/sim), so
// that the unchanged engine runs for simulated hours in milliseconds, or
// Null (no clock control, like chronyd -x). The Linux system calls come
// with the daemon; nothing here may change the clock of the machine the
// tests run on.
//
// Sign conventions: a frequency in ppm is the correction the kernel applies
// (positive speeds the clock up, as adjtimex's freq field); a step or slew
// delta is added to the clock (positive moves it forward).
package clock

import (
	"errors"
	"fmt"
	"math"
	"syscall"
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

// Limits of the Linux kernel clock.
const (
	// MaxFreqPPM is the largest ADJ_FREQUENCY correction.
	MaxFreqPPM = 500.0
	// MaxCorrectionPPM is the largest frequency correction a Clock makes:
	// beyond ±MaxFreqPPM the tick takes the coarse part (as chrony does),
	// and half the tick's range stays free for slewing.
	MaxCorrectionPPM = MaxRatePPM / 2
	// MaxRatePPM is the largest total correction (tick ±10 % plus
	// frequency): the fastest slew the kernel can do.
	MaxRatePPM = 100000.0
	// nominalTickUS is the tick length at USER_HZ 100.
	nominalTickUS = 10000
	// ppmPerTickUS is how much one microsecond of tick changes the rate.
	ppmPerTickUS = 1e6 / nominalTickUS
	// maxErrorUS is the kernel's ceiling for maxerror/esterror (16 s).
	maxErrorUS = 16_000_000
)

// Seconds converts seconds to a Duration, saturating instead of wrapping
// around (a NaN gives 0): estimates are floats, and a wild one must not
// become its opposite.
func Seconds(s float64) time.Duration {
	switch ns := s * 1e9; {
	case math.IsNaN(ns):
		return 0
	case ns >= math.MaxInt64:
		return math.MaxInt64
	case ns <= math.MinInt64:
		return math.MinInt64
	default:
		return time.Duration(ns)
	}
}

// ErrPermission is returned when the process may not adjust the clock.
var ErrPermission = errors.New("need CAP_SYS_TIME to adjust the clock, or run with --no-clock-control")

// Status is the synchronisation status handed to the kernel. The kernel
// reports it to every adjtimex caller (TIME_OK vs TIME_ERROR) and uses it
// for its 11-minute RTC update.
type Status struct {
	// Synchronized clears STA_UNSYNC.
	Synchronized bool
	// MaxError bounds the clock's error (the kernel adds 500 µs per second
	// until the next update).
	MaxError time.Duration
	// EstError is the estimated error (one standard deviation).
	EstError time.Duration
	// Leap is 0, or +1 to insert / -1 to delete a second at the end of the
	// UTC day (STA_INS / STA_DEL).
	Leap int
}

// Update is one change of the clock, made with a single adjtimex call so
// that an audit log sees one record per clock update.
type Update struct {
	// FreqPPM is the new frequency correction, within ±MaxCorrectionPPM.
	FreqPPM float64
	// Slew is the phase to add to the clock (positive: forward), slewed at
	// up to MaxRatePPM of extra rate, over at least MinDuration (of
	// monotonic time) so that a late end costs little. It replaces the slew
	// in progress; zero ends it.
	Slew        time.Duration
	MaxRatePPM  float64
	MinDuration time.Duration
	// Status, when not nil, is handed to the kernel in the same call.
	Status *Status
}

// Clock turns the engine's decisions into kernel calls: a frequency
// correction, slews (a temporary extra rate through the tick and
// frequency; never the kernel PLL or adjtime, whose lags are what the
// engine avoids), steps and the sync status. It keeps the exact phase it
// has applied (Applied), so that the engine's estimates can separate the
// clock's own behaviour from the corrections, and counts its adjtimex calls
// that change something: the calls an audit log records.
//
// A Clock is not safe for concurrent use: the engine's loop owns it.
type Clock struct {
	k           Kernel
	freqPPM     float64       // the frequency correction, without the slew
	slewPPM     float64       // extra rate of the slew in progress
	slewStart   time.Duration // monotonic
	slewEnd     time.Duration // monotonic
	committed   time.Duration // phase applied by finished slews and steps
	adjustments int
	onStep      []func(delta time.Duration)
}

// New reads the kernel's current frequency correction and returns a Clock
// that starts from it.
func New(k Kernel) (*Clock, error) {
	var tx unix.Timex
	if _, err := k.Adjtimex(&tx); err != nil {
		return nil, fmt.Errorf("read kernel clock: %w", err)
	}
	c := &Clock{k: k}
	if tx.Tick == 0 {
		tx.Tick = nominalTickUS
	}
	c.freqPPM = realizedPPM(&tx)
	return c, nil
}

// Now reads the realtime and monotonic clocks.
func (c *Clock) Now() (time.Time, time.Duration) { return c.k.Now() }

// FrequencyPPM is the frequency correction in force, without any slew.
func (c *Clock) FrequencyPPM() float64 { return c.freqPPM }

// Adjustments counts the adjtimex calls that changed something.
func (c *Clock) Adjustments() int { return c.adjustments }

// OnStep registers f to be called after every step, with the step's size.
func (c *Clock) OnStep(f func(delta time.Duration)) { c.onStep = append(c.onStep, f) }

// SlewEnd reports whether a slew is in progress and when it ends
// (monotonic time); the owner must call EndSlew then.
func (c *Clock) SlewEnd() (bool, time.Duration) { return c.slewPPM != 0, c.slewEnd }

// Applied is the phase this Clock has added to the clock by steps and
// slews up to monotonic time mono (which must not precede the start of the
// slew in progress by more than a round trip: it is meant for "now" and
// for the middle of the exchange just completed).
func (c *Clock) Applied(mono time.Duration) time.Duration {
	return c.committed + c.slewed(mono)
}

// slewed is the phase the slew in progress has added by monotonic time
// mono. The kernel's rate is (1+f)(1+freq+slew) for a raw frequency error
// f, and the monotonic clock runs at that rate too, so d of monotonic time
// adds slew·d/(1+freq+slew) of phase: exact, whatever f is. The slew runs
// until it is ended (EndSlew, Apply, Step), even past its planned end if
// the owner is late.
func (c *Clock) slewed(mono time.Duration) time.Duration {
	if c.slewPPM == 0 || mono <= c.slewStart {
		return 0
	}
	d := (mono - c.slewStart).Seconds()
	r := c.slewPPM / 1e6
	return Seconds(r * d / (1 + c.freqPPM/1e6 + r))
}

// Apply makes one clock update at monotonic time now and returns when its
// slew ends (now if there is none). The frequency and the slew's rate are
// booked as the kernel applies them (to 2⁻¹⁶ ppm, and the tick's 100 ppm
// steps), so that Applied is exact.
func (c *Clock) Apply(u Update, now time.Duration) (slewEnd time.Duration, err error) {
	if math.IsNaN(u.FreqPPM) || math.Abs(u.FreqPPM) > MaxCorrectionPPM {
		return now, fmt.Errorf("frequency correction %g ppm outside ±%g ppm", u.FreqPPM, MaxCorrectionPPM)
	}
	slewPPM, d := 0.0, 0.0
	if u.Slew != 0 {
		slewPPM, d = slewPlan(u.Slew, u.FreqPPM, u.MaxRatePPM, u.MinDuration)
	}
	var tx unix.Timex
	rateFields(&tx, u.FreqPPM+slewPPM)
	if u.Status != nil {
		if err := c.statusFields(&tx, *u.Status); err != nil {
			return now, err
		}
	}
	if err := c.adjtimex(&tx); err != nil {
		return now, fmt.Errorf("update clock (frequency %+.3f ppm, slew %v): %w", u.FreqPPM, u.Slew, err)
	}
	c.committed += c.slewed(now)
	c.freqPPM = quantized(u.FreqPPM)
	c.slewPPM = 0
	if slewPPM != 0 {
		c.slewPPM = realizedPPM(&tx) - c.freqPPM
	}
	c.slewStart, c.slewEnd = now, now+Seconds(d)
	return c.slewEnd, nil
}

// quantized is the rate correction the kernel applies for ppm.
func quantized(ppm float64) float64 {
	var tx unix.Timex
	rateFields(&tx, ppm)
	return realizedPPM(&tx)
}

// realizedPPM is the rate correction tx's tick and frequency make.
func realizedPPM(tx *unix.Timex) float64 {
	return float64(tx.Tick-nominalTickUS)*ppmPerTickUS + float64(tx.Freq)/65536
}

// slewPlan picks the extra rate (ppm, signed) and monotonic duration (s)
// that add delta: the minimum duration if the rate allows, else the full
// rate. With base = 1+freq and a signed rate r, d of monotonic time adds
// r·d/(base+r); for a magnitude g = |delta| and sign σ that gives
// |r| = g·base/(d − σg) and d = g·(base + σ|r|)/|r|.
func slewPlan(delta time.Duration, freqPPM, maxRatePPM float64, minDuration time.Duration) (ratePPM, seconds float64) {
	maxRate := math.Min(maxRatePPM, MaxRatePPM-math.Abs(freqPPM)) / 1e6
	base := 1 + freqPPM/1e6
	g := math.Abs(delta.Seconds())
	sign := 1.0
	if delta < 0 {
		sign = -1
	}
	d := minDuration.Seconds()
	r := maxRate
	if d > sign*g && g*base/(d-sign*g) <= maxRate {
		r = g * base / (d - sign*g)
	} else {
		d = g * (base + sign*r) / r
	}
	return sign * r * 1e6, d
}

// EndSlew ends the slew in progress at monotonic time now (its planned end,
// or later if the timer was late: the extra phase is counted in Applied).
func (c *Clock) EndSlew(now time.Duration) error {
	if c.slewPPM == 0 {
		return nil
	}
	var tx unix.Timex
	rateFields(&tx, c.freqPPM)
	if err := c.adjtimex(&tx); err != nil {
		return fmt.Errorf("end slew: %w", err)
	}
	c.committed += c.slewed(now)
	c.slewPPM = 0
	return nil
}

// Step steps the clock by delta (ADJ_SETOFFSET) at monotonic time now,
// ending any slew in the same call. Subscribers are told.
func (c *Clock) Step(delta, now time.Duration) error {
	tx := unix.Timex{Modes: unix.ADJ_SETOFFSET | unix.ADJ_NANO}
	tx.Time.Sec = int64(delta / time.Second)
	tx.Time.Usec = int64(delta % time.Second)
	if tx.Time.Usec < 0 { // the kernel wants 0 <= nanoseconds < 1e9
		tx.Time.Sec--
		tx.Time.Usec += 1e9
	}
	rateFields(&tx, c.freqPPM)
	if err := c.adjtimex(&tx); err != nil {
		return fmt.Errorf("step clock by %v: %w", delta, err)
	}
	c.committed += c.slewed(now) + delta
	c.slewPPM = 0
	for _, f := range c.onStep {
		f(delta)
	}
	return nil
}

// Resync takes the frequency correction as it now is in the kernel
// (another process changed it: the engine re-bases instead of fighting
// it): freqPPM becomes the correction in force, any slew in progress is
// dropped (its phase so far is kept in Applied), and the change from what
// this Clock had set is returned, for the estimators.
func (c *Clock) Resync(freqPPM float64, now time.Duration) (deltaPPM float64) {
	c.committed += c.slewed(now)
	deltaPPM = freqPPM - c.freqPPM
	c.freqPPM, c.slewPPM = freqPPM, 0
	return deltaPPM
}

// Stepped books a step that someone else made (an administrator's date
// -s, another daemon): Applied counts it as if this Clock had made it, so
// the engine's estimates keep their time axis and the next measurement
// shows the offset the step left; subscribers are told as for a step of
// this Clock's.
func (c *Clock) Stepped(delta time.Duration) {
	c.committed += delta
	for _, f := range c.onStep {
		f(delta)
	}
}

// statusFields reads the kernel status and fills in the status modes,
// keeping the status bits that are not ours.
func (c *Clock) statusFields(tx *unix.Timex, st Status) error {
	var cur unix.Timex
	if _, err := c.k.Adjtimex(&cur); err != nil {
		return fmt.Errorf("read kernel status: %w", err)
	}
	status := cur.Status &^ (unix.STA_UNSYNC | unix.STA_INS | unix.STA_DEL | unix.STA_PLL | unix.STA_FLL)
	if !st.Synchronized {
		status |= unix.STA_UNSYNC
	}
	switch {
	case st.Leap > 0:
		status |= unix.STA_INS
	case st.Leap < 0:
		status |= unix.STA_DEL
	}
	tx.Modes |= unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR
	tx.Status = status
	tx.Maxerror = clampUS(st.MaxError)
	tx.Esterror = clampUS(st.EstError)
	return nil
}

func clampUS(d time.Duration) int64 {
	return min(max(d.Microseconds(), 0), maxErrorUS)
}

// rateFields splits a total rate correction into the tick (100 ppm steps)
// and the frequency (the remainder). A correction within ±MaxFreqPPM leaves
// the tick nominal, so that small corrections never touch it.
func rateFields(tx *unix.Timex, ppm float64) {
	tickUS := 0
	if math.Abs(ppm) > MaxFreqPPM {
		tickUS = int(math.Round(ppm / ppmPerTickUS))
	}
	tx.Modes |= unix.ADJ_FREQUENCY | unix.ADJ_TICK
	tx.Tick = int64(nominalTickUS + tickUS)
	tx.Freq = int64(math.Round((ppm - float64(tickUS)*ppmPerTickUS) * 65536))
}

func (c *Clock) adjtimex(tx *unix.Timex) error {
	_, err := c.k.Adjtimex(tx)
	if errors.Is(err, syscall.EPERM) {
		return ErrPermission
	}
	if err == nil {
		c.adjustments++
	}
	return err
}
