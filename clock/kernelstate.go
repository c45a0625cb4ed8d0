package clock

import (
	"fmt"
	"math"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Status bits that a clock discipline owns: the kernel PLL/FLL and PPS
// disciplines, the leap second flags, the sync flag and the frequency
// hold. A daemon taking over the clock clears all but STA_UNSYNC, and
// another process changing one of them is an external change.
const ownedStatus = unix.STA_PLL | unix.STA_PPSFREQ | unix.STA_PPSTIME | unix.STA_FLL |
	unix.STA_INS | unix.STA_DEL | unix.STA_UNSYNC | unix.STA_FREQHOLD

// readOnlyStatus are the bits the kernel ignores in ADJ_STATUS (STA_RONLY).
const readOnlyStatus = unix.STA_PPSSIGNAL | unix.STA_PPSJITTER | unix.STA_PPSWANDER |
	unix.STA_PPSERROR | unix.STA_CLOCKERR | unix.STA_NANO | unix.STA_MODE | unix.STA_CLK

// StartupPlan is what to do with the kernel clock state found at start.
type StartupPlan struct {
	// TickOffNominal is set when the tick was not the nominal 10000 µs.
	// A daemon that slews through the tick (as Clock does, and chrony)
	// leaves it off nominal when it dies mid-slew, so the tick is never
	// taken as part of the frequency: it cannot be told apart from a
	// coarse frequency correction beyond ±500 ppm, and the drift file,
	// which holds the whole correction, decides instead.
	TickOffNominal bool
	// FreqPPM is the frequency correction to start from (positive speeds
	// the clock up): the drift file's when there is one, else the
	// kernel's frequency field without the tick.
	FreqPPM float64
	// Restore are the adjtimex calls, in order, that put the kernel in a
	// known state before clock.New reads it: the kernel PLL's pending
	// offset zeroed (the kernel takes ADJ_OFFSET only with STA_PLL on,
	// so the first call turns it on to do that), then one call with the
	// nominal tick and FreqPPM, the PLL/FLL/PPS disciplines, frequency
	// hold and leap flags cleared, and STA_UNSYNC set with a 16 s error
	// until this daemon has synchronised. Empty when nothing needs
	// changing (a nominal tick, no PLL, no pending offset, no leap flag,
	// unsynchronised): the engine then applies the drift file itself.
	Restore []unix.Timex
	// Notes say what was found, one line each, for the log.
	Notes []string
}

// PlanStartup decides, from the kernel state tx read at start (modes 0)
// and the drift file's frequency (haveDrift false: no drift file, or an
// unusable one), what to restore. It is pure: the caller makes the calls,
// through the same Kernel as the Clock, before clock.New. A drift value
// outside ±MaxCorrectionPPM or NaN is ignored.
func PlanStartup(tx unix.Timex, driftPPM float64, haveDrift bool) StartupPlan {
	var p StartupPlan
	note := func(format string, args ...any) { p.Notes = append(p.Notes, fmt.Sprintf(format, args...)) }
	if haveDrift && (math.IsNaN(driftPPM) || math.Abs(driftPPM) > MaxCorrectionPPM) {
		note("drift file frequency %g ppm is outside ±%g ppm: ignored", driftPPM, MaxCorrectionPPM)
		haveDrift = false
	}
	kernelFreqPPM := float64(tx.Freq) / 65536
	p.FreqPPM = kernelFreqPPM
	if haveDrift {
		p.FreqPPM = driftPPM
	}
	if tx.Tick != 0 && tx.Tick != nominalTickUS {
		p.TickOffNominal = true
		from := "the kernel's frequency field"
		if haveDrift {
			from = "the drift file"
		}
		note("tick %d µs is off nominal (%d µs), as a daemon stopped mid-slew leaves it: restoring the nominal tick, frequency %+.3f ppm from %s", tx.Tick, nominalTickUS, p.FreqPPM, from)
	}
	offsetNS := kernelOffsetNS(tx)
	if offsetNS != 0 {
		note("a kernel PLL offset of %+.6f s is pending (left by ntpd or adjtimex -o): zeroing it", float64(offsetNS)/1e9)
	}
	owned := tx.Status & ownedStatus
	for _, b := range []struct {
		bit  int32
		what string
	}{
		{unix.STA_PLL, "the kernel PLL (STA_PLL) is on: turning it off, the daemon corrects the clock itself"},
		{unix.STA_FLL, "the kernel FLL mode (STA_FLL) is on: turning it off"},
		{unix.STA_PPSFREQ | unix.STA_PPSTIME, "the kernel PPS discipline (STA_PPSFREQ/STA_PPSTIME) is on: turning it off"},
		{unix.STA_FREQHOLD, "the kernel frequency hold (STA_FREQHOLD) is on: clearing it"},
		{unix.STA_INS | unix.STA_DEL, "a leap second flag (STA_INS/STA_DEL) is left set: clearing it until the sources announce one"},
	} {
		if owned&b.bit != 0 {
			note("%s", b.what)
		}
	}
	if owned&unix.STA_UNSYNC == 0 {
		note("the kernel says synchronised (left by a previous daemon): marking it unsynchronised until this daemon synchronises")
	}
	if !p.TickOffNominal && offsetNS == 0 && owned == unix.STA_UNSYNC {
		return p
	}
	if offsetNS != 0 {
		p.Restore = append(p.Restore, unix.Timex{
			Modes:  unix.ADJ_STATUS | unix.ADJ_OFFSET,
			Status: tx.Status&^readOnlyStatus | unix.STA_PLL,
		})
	}
	last := unix.Timex{
		Modes:    unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR,
		Status:   tx.Status&^(readOnlyStatus|ownedStatus) | unix.STA_UNSYNC,
		Maxerror: maxErrorUS,
		Esterror: maxErrorUS,
	}
	rateFields(&last, p.FreqPPM)
	p.Restore = append(p.Restore, last)
	return p
}

// kernelOffsetNS is the kernel PLL's pending offset in nanoseconds
// (tx.Offset is in ns with STA_NANO, else in µs).
func kernelOffsetNS(tx unix.Timex) int64 {
	if tx.Status&unix.STA_NANO != 0 {
		return tx.Offset
	}
	return tx.Offset * 1000
}

// RatePPM is the total rate correction of a kernel state: the tick's part
// (100 ppm per µs off nominal) plus the frequency field. A zero tick (an
// unfilled Timex) counts as nominal.
func RatePPM(tx unix.Timex) float64 {
	ppm := float64(tx.Freq) / 65536
	if tx.Tick != 0 {
		ppm += float64(tx.Tick-nominalTickUS) * ppmPerTickUS
	}
	return ppm
}

// Change is a difference between the kernel clock state this process
// last set and the state read back: the sign that another process
// (ntpd, chronyd, adjtimex(8), a hypervisor agent) is adjusting the clock.
// The engine re-bases on the new state instead of fighting it.
type Change struct {
	// Rate is set when the tick or the frequency changed; OldRatePPM and
	// NewRatePPM are the total corrections (see RatePPM), OldTickUS and
	// NewTickUS the ticks.
	Rate                   bool
	OldRatePPM, NewRatePPM float64
	OldTickUS, NewTickUS   int64
	// Offset is set when a kernel PLL offset appeared or grew (someone
	// called adjtimex with ADJ_OFFSET); OffsetNS is its value. An
	// adjtime(3) offset is invisible to a read (modes 0) and shows up as
	// measured offsets instead.
	Offset   bool
	OffsetNS int64
	// StatusSet and StatusCleared are the owned status bits (PLL, FLL,
	// PPS, leap, STA_UNSYNC, frequency hold) turned on and off. The
	// kernel's own STA_UNSYNC, set when the maximum error reaches 16 s
	// without an update, is not a change.
	StatusSet, StatusCleared int32
}

// Any reports whether anything changed.
func (c Change) Any() bool {
	return c.Rate || c.Offset || c.StatusSet != 0 || c.StatusCleared != 0
}

// String describes the change for the log ("" if nothing changed).
func (c Change) String() string {
	var parts []string
	if c.Rate {
		s := fmt.Sprintf("frequency changed from %+.3f to %+.3f ppm", c.OldRatePPM, c.NewRatePPM)
		if c.OldTickUS != c.NewTickUS {
			s += fmt.Sprintf(" (tick %d → %d µs)", c.OldTickUS, c.NewTickUS)
		}
		parts = append(parts, s)
	}
	if c.Offset {
		parts = append(parts, fmt.Sprintf("kernel PLL offset %+.6f s set", float64(c.OffsetNS)/1e9))
	}
	if c.StatusSet != 0 {
		parts = append(parts, "status "+statusNames(c.StatusSet)+" set")
	}
	if c.StatusCleared != 0 {
		parts = append(parts, "status "+statusNames(c.StatusCleared)+" cleared")
	}
	return strings.Join(parts, "; ")
}

// statusNames spells status bits: "STA_PLL|STA_UNSYNC".
func statusNames(bits int32) string {
	var names []string
	for _, b := range []struct {
		bit  int32
		name string
	}{
		{unix.STA_PLL, "STA_PLL"}, {unix.STA_PPSFREQ, "STA_PPSFREQ"}, {unix.STA_PPSTIME, "STA_PPSTIME"},
		{unix.STA_FLL, "STA_FLL"}, {unix.STA_INS, "STA_INS"}, {unix.STA_DEL, "STA_DEL"},
		{unix.STA_UNSYNC, "STA_UNSYNC"}, {unix.STA_FREQHOLD, "STA_FREQHOLD"},
	} {
		if bits&b.bit != 0 {
			names = append(names, b.name)
		}
	}
	return strings.Join(names, "|")
}

// CompareKernel compares the kernel state last, as the kernel returned it
// from this process's last change, with now, read since (modes 0). It is
// pure. The kernel's frequency readback is exact (the same conversion both
// times), so any difference in tick or frequency is somebody else's;
// the maximum and estimated errors, which the kernel grows by itself, are
// not compared.
func CompareKernel(last, now unix.Timex) Change {
	var c Change
	oldTick, newTick := tickOrNominal(last.Tick), tickOrNominal(now.Tick)
	if oldTick != newTick || last.Freq != now.Freq {
		c.Rate = true
		c.OldRatePPM, c.NewRatePPM = RatePPM(last), RatePPM(now)
		c.OldTickUS, c.NewTickUS = oldTick, newTick
	}
	// A pending offset only shrinks on its own (the kernel slews it out).
	o1, o2 := kernelOffsetNS(last), kernelOffsetNS(now)
	if o2 != 0 && (o1 == 0 || (o1 < 0) != (o2 < 0) || abs64(o2) > abs64(o1)) {
		c.Offset, c.OffsetNS = true, o2
	}
	diff := (last.Status ^ now.Status) & ownedStatus
	c.StatusSet = diff & now.Status
	c.StatusCleared = diff & last.Status
	if c.StatusSet&unix.STA_UNSYNC != 0 && now.Maxerror >= maxErrorUS {
		c.StatusSet &^= unix.STA_UNSYNC // the kernel's own doing
	}
	return c
}

func tickOrNominal(t int64) int64 {
	if t == 0 {
		return nominalTickUS
	}
	return t
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// Watched is a Kernel that remembers the state the kernel returned from
// this process's last change (an Adjtimex with modes), so that Check can
// tell, once per poll, whether another process has changed the clock
// since. Give the Clock a Watched over the real kernel. It is not safe
// for concurrent use (the loop owns it, as it owns the Clock).
type Watched struct {
	k    Kernel
	last unix.Timex
	have bool
}

// NewWatched returns a Watched over k.
func NewWatched(k Kernel) *Watched { return &Watched{k: k} }

// Adjtimex passes the call on and records the resulting state when the
// call changed something.
func (w *Watched) Adjtimex(tx *unix.Timex) (int, error) {
	modes := tx.Modes
	state, err := w.k.Adjtimex(tx)
	if err == nil && modes != 0 {
		w.last, w.have = *tx, true
	}
	return state, err
}

// Now reads the realtime and monotonic clocks.
func (w *Watched) Now() (time.Time, time.Duration) { return w.k.Now() }

// Check reads the kernel state (modes 0) and compares it with the state
// after this process's last change (CompareKernel); the state read becomes
// the new reference, so that one external change is reported once. Before
// any change of ours the first read is the reference.
func (w *Watched) Check() (Change, error) {
	var tx unix.Timex
	if _, err := w.k.Adjtimex(&tx); err != nil {
		return Change{}, fmt.Errorf("read kernel clock state: %w", err)
	}
	var c Change
	if w.have {
		c = CompareKernel(w.last, tx)
	}
	w.last, w.have = tx, true
	return c, nil
}
