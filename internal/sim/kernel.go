package sim

import (
	"errors"
	"fmt"
	"math"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/clock"
)

// Linux NTP constants (kernel/time/ntp.c, include/linux/timex.h).
const (
	tickUSNominal     = 10000    // USER_HZ = 100
	tickUSMin         = 9000     // −10 %
	tickUSMax         = 11000    // +10 %
	maxFreqPPM        = 500      // MAXFREQ
	freqScale         = 65536    // timex freq is ppm·2^16
	maxErrorUS        = 16000000 // NTP_PHASE_LIMIT, µs
	maxErrorGrowthUS  = 500      // per second, MAXFREQ
	maxTimeConst      = 10       // MAXTC
	shiftPLL          = 2        // SHIFT_PLL since Linux 2.6.31
	shiftFLL          = 2        // SHIFT_FLL
	fllMinIntervalS   = 256      // MINSEC
	fllMaxIntervalS   = 2048     // MAXSEC
	adjtimeMaxSlewUS  = 500      // µs per second, MAX_TICKADJ
	maxPhaseS         = 0.5      // MAXPHASE: PLL offsets are clamped to ±0.5 s
	maxTAIOffsetS     = 100000   // MAX_TAI_OFFSET
	adjAdjtime        = 0x8000   // ADJ_ADJTIME: the adjtime() path
	adjOffsetReadonly = 0x2000   // ADJ_OFFSET_READONLY
	staReadonly       = unix.STA_PPSSIGNAL | unix.STA_PPSJITTER | unix.STA_PPSWANDER |
		unix.STA_PPSERROR | unix.STA_CLOCKERR | unix.STA_NANO | unix.STA_MODE | unix.STA_CLK
	nsPerSecond = int64(time.Second)
	nsPerDay    = 86400 * nsPerSecond
)

// DefaultEpochUnix is the true UTC time at T = 0, in Unix seconds
// (2025-01-01T00:00:00Z), when ClockConfig.Epoch is zero.
const DefaultEpochUnix = 1735689600

// maxRawFreq bounds |f0|: clknetsim refuses a raw frequency outside
// (0.8, 1.2), and the timer arithmetic assumes the clock runs forward.
const maxRawFreq = 0.2

// ErrInvalidConfig is wrapped by every configuration error of this package.
var ErrInvalidConfig = errors.New("invalid simulation config")

// ClockConfig describes a simulated host's oscillator and its clock at T = 0.
type ClockConfig struct {
	// Epoch is the true UTC time at T = 0. Zero means DefaultEpochUnix.
	Epoch time.Time
	// InitialOffset is clock − true time at T = 0 (positive: the clock is
	// ahead). Default 0.
	InitialOffset time.Duration
	// F0 is the raw frequency error f_raw at T = 0 before the first wander
	// step, as a fraction (1e-4 = +100 ppm: the clock runs fast). Default 0.
	F0 float64
	// Wander is w, the standard deviation of the per-second random-walk
	// step of f_raw, as a fraction per √s (1e-9 in the reference
	// scenarios). Default 0: a constant frequency error.
	Wander float64
	// MonotonicStart is CLOCK_MONOTONIC at T = 0, not negative. Default 0.
	MonotonicStart time.Duration
}

// Kernel emulates one host's Linux clock: CLOCK_REALTIME and
// CLOCK_MONOTONIC driven by an oscillator with frequency error and wander,
// and clock_adjtime(CLOCK_REALTIME) as SIMULATION.md models it. It
// implements clock.Kernel. True time T only moves when the owner calls
// AdvanceTo; readings between two advances return the same value, exact to
// 1 ns.
//
// The rate of both clocks over true time is
//
//	total = (1 + f_raw) · (tick/10000 + freq_ppm/1e6 + pll_slew + ss_slew/1e6)
//
// f_raw changes, and the PLL and adjtime slews are updated, only at whole
// seconds of true time; ADJ_FREQUENCY and ADJ_TICK act at once.
//
// A Kernel is not safe for concurrent use: the simulation is one goroutine.
type Kernel struct {
	t           time.Duration // true time since the start
	epochNS     int64         // Unix ns of true time at T = 0
	monoStartNS int64
	offNS       float64 // realtime − (epoch + T), ns
	monoOffNS   float64 // monotonic − (MonotonicStart + T), ns; never stepped
	excess      float64 // total − 1

	// Oscillator.
	f0, wander float64
	wanderSum  float64 // Σ w·N_i
	rawRate    float64 // 1 + f_raw
	wanderGen  *Gen

	// Kernel NTP state.
	tickUS       int64
	freqPPM      float64
	status       int32
	constant     int64
	maxErrorUS   int64
	estErrorUS   int64
	tai          int32
	pllOffsetS   float64 // phase offset still to slew out
	pllSlew      float64 // slew rate this second, s/s
	pllIntervalS int64   // seconds since the last ADJ_OFFSET (while STA_PLL)
	ssPendingUS  int64   // adjtime amount still to slew
	ssSlewUS     int64   // adjtime slew this second, µs/s
	state        int     // leap state machine: TIME_OK ... TIME_WAIT
	leapEndNS    int64   // in TIME_OOP: the realtime at which it ends

	adjustments int64
}

var _ clock.Kernel = (*Kernel)(nil)

// NewKernel returns a kernel at T = 0 in Linux's boot state (tick 10000 µs,
// freq 0, STA_UNSYNC, maxerror and esterror 16 s, time constant 2, so
// adjtimex returns TIME_ERROR). wander draws the N_i of the frequency random
// walk; it is needed when cfg.Wander is not zero, and N_0 is drawn at once.
func NewKernel(cfg ClockConfig, wander *Gen) (*Kernel, error) {
	if math.IsNaN(cfg.F0) || math.Abs(cfg.F0) >= maxRawFreq {
		return nil, fmt.Errorf("%w: clock frequency error %g outside ±%g", ErrInvalidConfig, cfg.F0, maxRawFreq)
	}
	if math.IsNaN(cfg.Wander) || cfg.Wander < 0 {
		return nil, fmt.Errorf("%w: clock wander %g is negative", ErrInvalidConfig, cfg.Wander)
	}
	if cfg.MonotonicStart < 0 {
		return nil, fmt.Errorf("%w: monotonic start %v is negative", ErrInvalidConfig, cfg.MonotonicStart)
	}
	if cfg.Wander != 0 && wander == nil {
		return nil, fmt.Errorf("%w: clock wander %g needs a generator", ErrInvalidConfig, cfg.Wander)
	}
	epochNS := int64(DefaultEpochUnix) * nsPerSecond
	if !cfg.Epoch.IsZero() {
		epochNS = cfg.Epoch.UnixNano()
	}
	k := &Kernel{
		epochNS:     epochNS,
		monoStartNS: int64(cfg.MonotonicStart),
		offNS:       float64(cfg.InitialOffset),
		f0:          cfg.F0,
		wander:      cfg.Wander,
		wanderGen:   wander,
		tickUS:      tickUSNominal,
		status:      unix.STA_UNSYNC,
		constant:    2,
		maxErrorUS:  maxErrorUS,
		estErrorUS:  maxErrorUS,
		state:       unix.TIME_OK,
	}
	k.stepWander()
	k.updateRate()
	return k, nil
}

// T returns the kernel's current true time.
func (k *Kernel) T() time.Duration { return k.t }

// Now returns CLOCK_REALTIME and CLOCK_MONOTONIC at the current true time.
func (k *Kernel) Now() (realtime time.Time, monotonic time.Duration) {
	return time.Unix(0, k.realtimeAt(0)).UTC(), time.Duration(k.monotonicAt(0))
}

// Offset returns realtime − true time in seconds (positive: the clock is
// ahead), unrounded.
func (k *Kernel) Offset() float64 { return k.offNS * 1e-9 }

// FreqErrorPPB returns the residual frequency error of the disciplined
// clock, (total − 1)·1e9: raw error, corrections and slews together.
func (k *Kernel) FreqErrorPPB() float64 { return k.excess * 1e9 }

// RawFreq returns the oscillator's f_raw for the current second, as a
// fraction, computed as (1 + f_raw) − 1 as the rate uses it.
func (k *Kernel) RawFreq() float64 { return k.rawRate - 1 }

// Adjustments returns how many successful adjtimex calls changed
// something: non-zero modes, except ADJ_OFFSET_SS_READ, which only reads.
func (k *Kernel) Adjustments() int64 { return k.adjustments }

// AdvanceTo moves true time forward to t, integrating both clocks exactly
// across the per-second updates: at every whole second s ≤ t it steps the
// wander, computes that second's PLL and adjtime slews, grows maxerror and
// runs the leap-second state machine. A leap second is inserted or deleted
// at the instant the realtime clock reaches it. t before the current time
// panics.
func (k *Kernel) AdvanceTo(t time.Duration) {
	if t < k.t {
		panic(fmt.Sprintf("sim: kernel time moved backwards: %v to %v", k.t, t))
	}
	for k.t < t {
		next := (k.t/time.Second + 1) * time.Second
		end := min(t, next)
		k.run(end)
		if k.t == next {
			k.second()
		}
	}
}

// run integrates to end, which is no later than the next whole second, so
// the rate is constant on the way except at a leap second.
func (k *Kernel) run(end time.Duration) {
	for k.t < end {
		seg := int64(end - k.t)
		leap := false
		if b, ok := k.leapBoundary(); ok {
			if d := reach(k.epochNS+int64(k.t), k.offNS, k.excess, b); d <= seg {
				seg, leap = d, true
			}
		}
		k.integrate(seg)
		if leap {
			k.leap()
		}
	}
}

func (k *Kernel) integrate(dNS int64) {
	k.offNS += float64(float64(dNS) * k.excess)
	k.monoOffNS += float64(float64(dNS) * k.excess)
	k.t += time.Duration(dNS)
}

// realtimeAt is the realtime reading, Unix ns, dNS after the current time
// at the current rate.
func (k *Kernel) realtimeAt(dNS int64) int64 {
	return k.epochNS + int64(k.t) + dNS + roundNS(k.offNS+float64(float64(dNS)*k.excess))
}

// monotonicAt is the monotonic reading dNS after the current time at the
// current rate.
func (k *Kernel) monotonicAt(dNS int64) int64 {
	return k.monoStartNS + int64(k.t) + dNS + roundNS(k.monoOffNS+float64(float64(dNS)*k.excess))
}

// monotonicDeadline returns the earliest true time at which the monotonic
// clock reads at least m if the rate stays as it is now.
func (k *Kernel) monotonicDeadline(m time.Duration) time.Duration {
	return k.t + time.Duration(reach(k.monoStartNS+int64(k.t), k.monoOffNS, k.excess, int64(m)))
}

func roundNS(x float64) int64 { return int64(math.Round(x)) }

// The float64(a*b) conversions in this file and in network.go stop the Go
// compiler from fusing a multiply and an add into an FMA (which it does on
// arm64 but not on amd64), so a run gives the same bits on every platform;
// readings must also agree with what integrate accumulates.

// reachNever is what reach returns for a target too far to matter: about
// 146 years.
const reachNever = 1 << 62

// reach returns the smallest d ≥ 0 with fixed + d + round(off + d·e) ≥
// target (fixed ≥ 0 or target − fixed small), or reachNever. The left side
// never decreases with d because |e| < 1.
func reach(fixed int64, off, e float64, target int64) int64 {
	read := func(d int64) int64 { return fixed + d + roundNS(off+float64(float64(d)*e)) }
	if read(0) >= target {
		return 0
	}
	est := math.Ceil((float64(target-fixed) - off) / (1 + e))
	if est >= reachNever {
		return reachNever
	}
	d := max(int64(est), 1)
	for d > 1 && read(d-1) >= target {
		d--
	}
	for read(d) < target {
		d++
	}
	return d
}

// leapBoundary returns the realtime reading at which the leap state machine
// acts next: midnight UTC in TIME_INS (the clock goes back to 23:59:59,
// shown as 23:59:60), 23:59:59 in TIME_DEL (the clock jumps to 00:00:00), and
// the end of the repeated second in TIME_OOP.
func (k *Kernel) leapBoundary() (int64, bool) {
	now := k.realtimeAt(0)
	switch k.state {
	case unix.TIME_INS:
		return floorDiv(now, nsPerDay)*nsPerDay + nsPerDay, true
	case unix.TIME_DEL:
		return floorDiv(now+nsPerSecond, nsPerDay)*nsPerDay + nsPerDay - nsPerSecond, true
	case unix.TIME_OOP:
		return k.leapEndNS, true
	}
	return 0, false
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// leap acts at the boundary leapBoundary announced.
func (k *Kernel) leap() {
	switch k.state {
	case unix.TIME_INS:
		k.leapEndNS = k.realtimeAt(0)
		k.offNS -= float64(nsPerSecond)
		k.tai++
		k.state = unix.TIME_OOP
	case unix.TIME_DEL:
		k.offNS += float64(nsPerSecond)
		k.tai--
		k.state = unix.TIME_WAIT
	case unix.TIME_OOP:
		k.state = unix.TIME_WAIT
	}
}

// second is the update at a whole second of true time.
func (k *Kernel) second() {
	k.stepWander()

	if k.status&unix.STA_PLL != 0 {
		k.pllIntervalS++
	}
	// As in Linux, the phase offset keeps being slewed out when STA_PLL is
	// turned off.
	k.pllSlew = k.pllOffsetS / float64(int64(1)<<(shiftPLL+k.constant))
	k.pllOffsetS -= k.pllSlew

	switch {
	case k.ssPendingUS > adjtimeMaxSlewUS:
		k.ssSlewUS = adjtimeMaxSlewUS
	case k.ssPendingUS < -adjtimeMaxSlewUS:
		k.ssSlewUS = -adjtimeMaxSlewUS
	default:
		k.ssSlewUS = k.ssPendingUS
	}
	k.ssPendingUS -= k.ssSlewUS

	k.maxErrorUS += maxErrorGrowthUS
	if k.maxErrorUS >= maxErrorUS {
		k.maxErrorUS = maxErrorUS
		k.status |= unix.STA_UNSYNC
	}

	switch k.state {
	case unix.TIME_OK:
		if k.status&unix.STA_INS != 0 {
			k.state = unix.TIME_INS
		} else if k.status&unix.STA_DEL != 0 {
			k.state = unix.TIME_DEL
		}
	case unix.TIME_INS:
		if k.status&unix.STA_INS == 0 {
			k.state = unix.TIME_OK
		}
	case unix.TIME_DEL:
		if k.status&unix.STA_DEL == 0 {
			k.state = unix.TIME_OK
		}
	case unix.TIME_WAIT:
		if k.status&(unix.STA_INS|unix.STA_DEL) == 0 {
			k.state = unix.TIME_OK
		}
	}
	k.updateRate()
}

// stepWander draws this second's N_i: f_raw = f0 + Σ w·N_i, summed as
// clknetsim's (+ f0 (sum (* w (normal)))) does.
func (k *Kernel) stepWander() {
	if k.wander != 0 {
		k.wanderSum += float64(k.wander * k.wanderGen.Normal())
	}
	k.rawRate = 1 + (k.f0 + k.wanderSum)
}

// updateRate recomputes total − 1. It expands (1 + f)(1 + c) − 1 rather
// than subtracting 1 from the product, which keeps its relative precision;
// with tick 10000, freq 0 and no slew it is exactly f_raw.
func (k *Kernel) updateRate() {
	f := k.rawRate - 1
	c := float64(k.tickUS-tickUSNominal)/tickUSNominal + k.freqPPM/1e6 + k.pllSlew + float64(k.ssSlewUS)/1e6
	k.excess = f + c + float64(f*c)
}

// Adjtimex is clock_adjtime(CLOCK_REALTIME, tx) with Linux's semantics as
// SIMULATION.md models them. The modes are applied in this order:
// ADJ_FREQUENCY (clamped to ±500 ppm), ADJ_MAXERROR and ADJ_ESTERROR
// (clamped to [0, 16 s]), ADJ_STATUS (read-only bits kept; turning STA_PLL
// on restarts the PLL interval), ADJ_NANO, ADJ_MICRO, ADJ_TIMECONST
// (clamped to [0, 10]; +4 in microsecond mode, as Linux does), ADJ_TAI,
// ADJ_TICK, ADJ_OFFSET (the PLL, only with STA_PLL; the offset is clamped to
// ±0.5 s as in Linux), ADJ_SETOFFSET (steps the clock and sets maxerror to
// 16 s; Time.Usec holds ns when ADJ_NANO is in the same call's modes, as in
// Linux). ADJ_OFFSET_SINGLESHOT (adjtime) replaces the pending amount and
// returns the previous one in Offset; like Linux, it ignores all other
// modes. A tick outside [9000, 11000] µs or a malformed ADJ_SETOFFSET fails
// with EINVAL and changes nothing. The state returned is TIME_ERROR while
// STA_UNSYNC (or STA_CLOCKERR) is set, else the leap state.
func (k *Kernel) Adjtimex(tx *unix.Timex) (int, error) {
	modes := tx.Modes
	if modes&adjAdjtime != 0 {
		old := k.ssPendingUS
		if modes&adjOffsetReadonly == 0 {
			k.ssPendingUS = int64(tx.Offset)
			k.adjustments++
		}
		k.fill(tx)
		setInt(&tx.Offset, old)
		return k.result(), nil
	}

	if modes&unix.ADJ_TICK != 0 && (tx.Tick < tickUSMin || tx.Tick > tickUSMax) {
		return -1, unix.EINVAL
	}
	if modes&unix.ADJ_SETOFFSET != 0 {
		limit := int64(1e6)
		if modes&unix.ADJ_NANO != 0 {
			limit = 1e9
		}
		if usec := int64(tx.Time.Usec); usec < 0 || usec >= limit {
			return -1, unix.EINVAL
		}
	}

	if modes&unix.ADJ_FREQUENCY != 0 {
		k.freqPPM = clampFloat(float64(tx.Freq)/freqScale, -maxFreqPPM, maxFreqPPM)
	}
	if modes&unix.ADJ_MAXERROR != 0 {
		k.maxErrorUS = clampInt(int64(tx.Maxerror), 0, maxErrorUS)
	}
	if modes&unix.ADJ_ESTERROR != 0 {
		k.estErrorUS = clampInt(int64(tx.Esterror), 0, maxErrorUS)
	}
	if modes&unix.ADJ_STATUS != 0 {
		if tx.Status&unix.STA_PLL != 0 && k.status&unix.STA_PLL == 0 {
			k.pllIntervalS = 0
		}
		k.status = k.status&staReadonly | int32(tx.Status)&^staReadonly
	}
	if modes&unix.ADJ_NANO != 0 {
		k.status |= unix.STA_NANO
	}
	if modes&unix.ADJ_MICRO != 0 {
		k.status &^= unix.STA_NANO
	}
	if modes&unix.ADJ_TIMECONST != 0 {
		tc := clampInt(int64(tx.Constant), 0, maxTimeConst)
		if k.status&unix.STA_NANO == 0 {
			tc += 4
		}
		k.constant = clampInt(tc, 0, maxTimeConst)
	}
	if modes&unix.ADJ_TAI != 0 && tx.Constant >= 0 && tx.Constant <= maxTAIOffsetS {
		k.tai = int32(tx.Constant)
	}
	if modes&unix.ADJ_TICK != 0 {
		k.tickUS = int64(tx.Tick)
	}
	if modes&unix.ADJ_OFFSET != 0 && k.status&unix.STA_PLL != 0 {
		k.pll(int64(tx.Offset))
	}
	if modes&unix.ADJ_SETOFFSET != 0 {
		stepNS := int64(tx.Time.Sec) * nsPerSecond
		if modes&unix.ADJ_NANO != 0 {
			stepNS += int64(tx.Time.Usec)
		} else {
			stepNS += int64(tx.Time.Usec) * 1000
		}
		k.offNS += float64(stepNS)
		k.maxErrorUS = maxErrorUS
	}
	k.updateRate()
	if modes != 0 {
		k.adjustments++
	}
	k.fill(tx)
	return k.result(), nil
}

// pll is the kernel PLL (and, as in Linux, its FLL mode after long
// intervals): offset is in ns with STA_NANO, else µs. Like Linux, and
// unlike clknetsim, it clamps the offset to ±0.5 s, which bounds the slew
// at 125 ms/s so the clock never runs backwards.
func (k *Kernel) pll(offset int64) {
	offsetS := float64(offset) * 1e-6
	if k.status&unix.STA_NANO != 0 {
		offsetS = float64(offset) * 1e-9
	}
	offsetS = clampFloat(offsetS, -maxPhaseS, maxPhaseS)
	secs := k.pllIntervalS
	if k.status&unix.STA_FREQHOLD != 0 {
		secs = 0
	}
	var fll float64
	k.status &^= unix.STA_MODE
	if secs >= fllMinIntervalS && (k.status&unix.STA_FLL != 0 || secs > fllMaxIntervalS) {
		k.status |= unix.STA_MODE
		fll = offsetS / float64(secs<<shiftFLL)
	}
	den := float64(int64(4) << (shiftPLL + k.constant)) // 4·2^shift·2^tc
	pll := offsetS * float64(secs) / (den * den)
	k.freqPPM = clampFloat(k.freqPPM+float64((fll+pll)*1e6), -maxFreqPPM, maxFreqPPM)
	k.pllOffsetS = offsetS
	k.pllIntervalS = 0
}

// fill writes the kernel state into tx as Linux returns it.
func (k *Kernel) fill(tx *unix.Timex) {
	nowNS := k.realtimeAt(0)
	sec := floorDiv(nowNS, nsPerSecond)
	subNS := nowNS - sec*nsPerSecond
	offset, usec := k.pllOffsetS*1e6, subNS/1000
	if k.status&unix.STA_NANO != 0 {
		offset, usec = k.pllOffsetS*1e9, subNS
	}
	*tx = unix.Timex{Modes: tx.Modes, Status: k.status, Tai: k.tai}
	setInt(&tx.Offset, int64(offset))
	setInt(&tx.Freq, int64(k.freqPPM*freqScale))
	setInt(&tx.Maxerror, k.maxErrorUS)
	setInt(&tx.Esterror, k.estErrorUS)
	setInt(&tx.Constant, k.constant)
	setInt(&tx.Precision, 1)
	setInt(&tx.Tolerance, maxFreqPPM*freqScale)
	setInt(&tx.Time.Sec, sec)
	setInt(&tx.Time.Usec, usec)
	setInt(&tx.Tick, k.tickUS)
}

// setInt stores v in a unix.Timex field, whose integer type differs between
// 32- and 64-bit Linux.
func setInt[T ~int32 | ~int64](field *T, v int64) { *field = T(v) }

// result is the state adjtimex returns.
func (k *Kernel) result() int {
	if isErrorStatus(k.status) {
		return unix.TIME_ERROR
	}
	return k.state
}

// isErrorStatus mirrors Linux: unsynchronised, a clock error, or PPS
// discipline requested without a usable PPS signal (never present here).
func isErrorStatus(s int32) bool {
	return s&(unix.STA_UNSYNC|unix.STA_CLOCKERR) != 0 ||
		(s&(unix.STA_PPSFREQ|unix.STA_PPSTIME) != 0 && s&unix.STA_PPSSIGNAL == 0) ||
		s&(unix.STA_PPSTIME|unix.STA_PPSJITTER) == unix.STA_PPSTIME|unix.STA_PPSJITTER ||
		(s&unix.STA_PPSFREQ != 0 && s&(unix.STA_PPSWANDER|unix.STA_PPSERROR) != 0)
}

func clampFloat(x, lo, hi float64) float64 { return min(max(x, lo), hi) }

func clampInt(x, lo, hi int64) int64 { return min(max(x, lo), hi) }
