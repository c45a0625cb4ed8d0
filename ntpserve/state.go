package ntpserve

import (
	"fmt"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/ntpwire"

	"golang.org/x/sys/unix"
)

// State is the server's synchronisation state, the system variables of RFC
// 5905 §11.2 that go into every reply. A *State handed out by a StateSource
// is an immutable snapshot: replace it, never modify it.
type State struct {
	// Leap is the leap indicator (LeapNone … LeapUnsynch).
	Leap uint8
	// Stratum is the server's stratum: 1 primary, 2–15 secondary,
	// MaxStratum (16) unsynchronised.
	Stratum uint8
	// RefID identifies the reference (RFC 5905 §7.3): an IPv4 address in
	// network order for stratum ≥ 2, four ASCII letters for stratum 1.
	RefID uint32
	// RefTime is when the clock was last set or corrected; it is also the
	// epoch from which DispersionRatePPM grows the dispersion.
	RefTime ntpwire.Timestamp
	// RootDelay is the round-trip delay to the primary reference.
	RootDelay time.Duration
	// RootDispersion is the dispersion to the primary reference at RefTime.
	RootDispersion time.Duration
	// DispersionRatePPM grows RootDispersion with the age of RefTime in each
	// reply (RFC 5905 §11.2 uses PHI = 15 ppm); 0 keeps it fixed.
	DispersionRatePPM float64
	// Precision is log2 of the precision of the server's clock, in seconds
	// (-20 ≈ 1 µs).
	Precision int8
}

// rootDispersionAt returns the root dispersion to serve at time rx.
func (st *State) rootDispersionAt(rx ntpwire.Timestamp) time.Duration {
	d := st.RootDispersion
	if st.DispersionRatePPM > 0 && st.RefTime != 0 {
		if age := rx.Sub(st.RefTime); age > 0 {
			d += time.Duration(float64(age) * st.DispersionRatePPM / 1e6)
		}
	}
	return d
}

// StateSource supplies the state the server answers with. State is called
// for every batch of requests on every socket: it must be cheap, safe for
// concurrent use, and never block (an atomic.Pointer load).
type StateSource interface {
	State() *State
}

// Refresher is implemented by a StateSource that wants to be refreshed from
// the server's goroutines (so the package needs no timers): MaybeRefresh is
// called at most once per received batch with the current time and must
// return quickly when nothing is due.
type Refresher interface {
	MaybeRefresh(now time.Time)
}

// AtomicState is a StateSource whose state is set by its owner, such as the
// daemon's event loop. The zero value serves an unsynchronised state.
type AtomicState struct {
	p atomic.Pointer[State]
}

// unsyncState is what a server with no state answers with.
var unsyncState = State{Leap: LeapUnsynch, Stratum: MaxStratum, Precision: DefaultPrecision}

// Store publishes a new state; replies built after Store returns use it.
func (a *AtomicState) Store(st State) { a.p.Store(&st) }

// State returns the current snapshot.
func (a *AtomicState) State() *State {
	if p := a.p.Load(); p != nil {
		return p
	}
	return &unsyncState
}

// DefaultPrecision is the precision served when none is measured: 2^-20 s
// (about 1 µs), a conservative figure for a kernel-timestamped software clock.
const DefaultPrecision = -20

// LocalRefID is the reference identifier served when the time does not come
// from a known upstream server: 127.127.1.1, what chrony serves for `local`
// and ntpd's LOCAL clock driver address. Being a loopback address it never
// equals a real server's address, so clients' loop detection (RFC 5905
// §11.2.1 refid checks) is not fooled.
const LocalRefID = 0x7f7f0101

// UnknownUpstreamStratum is the stratum served when the kernel clock is
// synchronised by another program (its STA_UNSYNC flag is clear) and no local
// stratum is configured: the server cannot know its upstream's stratum, so it
// claims chrony's default `local` stratum (10), which keeps it usable (< 16)
// while any client with a real low-stratum source prefers that source. The
// root dispersion it serves is the kernel's honest maxerror bound.
const UnknownUpstreamStratum = 10

// kernelMaxErrorRatePPM is how fast the kernel grows maxerror between
// updates (MAXFREQ: 500 µs per second).
const kernelMaxErrorRatePPM = 500

// phiPPM is RFC 5905's frequency tolerance PHI (15 ppm), the dispersion
// growth of a local reference.
const phiPPM = 15

// SystemConfig configures SystemSource. The zero value serves the kernel's
// state with no local stratum.
type SystemConfig struct {
	// LocalStratum (1–15) serves this stratum even when the kernel clock is
	// not synchronised, like chrony's `local stratum N`; 0 (the default)
	// serves leap 3 / stratum 16 when the kernel says STA_UNSYNC.
	LocalStratum int
	// Precision is the served precision (log2 s); 0 means DefaultPrecision.
	// MeasurePrecision gives a measured figure.
	Precision int8
	// RefreshInterval is how often the kernel state is re-read and the
	// reference time renewed. Default 16s.
	RefreshInterval time.Duration
	// Kernel reads the kernel clock state. Default: clock.HostReadOnly(),
	// which refuses any call with modes before it reaches the kernel (and
	// SystemSource passes Modes 0 anyway). Tests inject a fake.
	Kernel KernelReader
}

// KernelReader reads the kernel clock state: clock.Kernel's Adjtimex, which
// clock.ReadOnly (the default) and every clock.Kernel satisfy. SystemSource
// only ever calls it with Modes 0.
type KernelReader interface {
	Adjtimex(tx *unix.Timex) (state int, err error)
}

// SystemSource is the StateSource of `ntptool serve` run alone: its state
// comes from the configured local stratum and the kernel clock's status,
// read through the clock package's read-only kernel. Decisions:
//
//   - kernel unsynchronised (STA_UNSYNC or TIME_ERROR), no local stratum:
//     leap 3, stratum 16, refid 0, root dispersion 16 s;
//   - local stratum N configured, kernel unsynchronised: leap 0, stratum N,
//     refid 127.127.1.1, reference time renewed every RefreshInterval, root
//     dispersion 2^precision growing at PHI (as chrony's `local`);
//   - kernel synchronised (by another daemon): the kernel's leap flags
//     (STA_INS/STA_DEL), stratum N if configured else
//     UnknownUpstreamStratum, refid 127.127.1.1, root delay 0 and root
//     dispersion = the kernel's maxerror (the daemon's own error bound, grown
//     by the kernel at 500 ppm, which replies keep growing).
type SystemSource struct {
	cfg      SystemConfig
	cur      atomic.Pointer[State]
	nextNano atomic.Int64 // Unix ns of the next refresh
	mu       sync.Mutex   // serialises Refresh
	lastErr  atomic.Pointer[error]
}

// NewSystemSource validates cfg and reads the kernel state once at now.
func NewSystemSource(cfg SystemConfig, now time.Time) (*SystemSource, error) {
	if cfg.LocalStratum < 0 || cfg.LocalStratum >= MaxStratum {
		return nil, fmt.Errorf("local stratum %d: must be 1–15, or 0 for none", cfg.LocalStratum)
	}
	if cfg.Precision == 0 {
		cfg.Precision = DefaultPrecision
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 16 * time.Second
	}
	if cfg.Kernel == nil {
		cfg.Kernel = clock.HostReadOnly()
	}
	s := &SystemSource{cfg: cfg}
	s.Refresh(now)
	return s, nil
}

// State returns the current snapshot.
func (s *SystemSource) State() *State { return s.cur.Load() }

// Err returns the error of the last kernel read, or nil.
func (s *SystemSource) Err() error {
	if p := s.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// MaybeRefresh refreshes the state if RefreshInterval has passed.
func (s *SystemSource) MaybeRefresh(now time.Time) {
	if now.UnixNano() < s.nextNano.Load() {
		return
	}
	if !s.mu.TryLock() {
		return // another goroutine is refreshing
	}
	defer s.mu.Unlock()
	if now.UnixNano() < s.nextNano.Load() {
		return
	}
	s.refreshLocked(now)
}

// Refresh re-reads the kernel state now.
func (s *SystemSource) Refresh(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshLocked(now)
}

func (s *SystemSource) refreshLocked(now time.Time) {
	var tx unix.Timex // Modes 0: a read
	state, err := s.cfg.Kernel.Adjtimex(&tx)
	if err != nil {
		err = fmt.Errorf("read kernel clock state (adjtimex): %w", err)
		s.lastErr.Store(&err)
	} else {
		s.lastErr.Store(nil)
	}
	st := systemState(s.cfg, now, state, &tx, err)
	s.cur.Store(&st)
	s.nextNano.Store(now.Add(s.cfg.RefreshInterval).UnixNano())
}

// systemState is SystemSource's pure decision (see its doc comment).
func systemState(cfg SystemConfig, now time.Time, kstate int, tx *unix.Timex, kerr error) State {
	unsync := kerr != nil || kstate == unix.TIME_ERROR || tx.Status&unix.STA_UNSYNC != 0
	st := State{Precision: cfg.Precision, RefTime: ntpwire.FromTime(now)}
	switch {
	case unsync && cfg.LocalStratum == 0:
		return State{Leap: LeapUnsynch, Stratum: MaxStratum, RootDispersion: 16 * time.Second, Precision: cfg.Precision}
	case unsync:
		st.Stratum = uint8(cfg.LocalStratum)
		st.RefID = LocalRefID
		st.RootDispersion = precisionDuration(cfg.Precision)
		st.DispersionRatePPM = phiPPM
		return st
	}
	switch {
	case tx.Status&unix.STA_INS != 0:
		st.Leap = LeapInsert
	case tx.Status&unix.STA_DEL != 0:
		st.Leap = LeapDelete
	}
	st.Stratum = UnknownUpstreamStratum
	if cfg.LocalStratum > 0 {
		st.Stratum = uint8(cfg.LocalStratum)
	}
	st.RefID = LocalRefID
	maxErr := time.Duration(tx.Maxerror) * time.Microsecond
	st.RootDispersion = max(maxErr, precisionDuration(cfg.Precision))
	st.DispersionRatePPM = kernelMaxErrorRatePPM
	return st
}

// precisionDuration returns 2^p seconds.
func precisionDuration(p int8) time.Duration {
	return time.Duration(math.Ldexp(float64(time.Second), int(p)))
}

// MeasurePrecision estimates the precision of the clock read by now, as
// chrony does: the smallest non-zero step between consecutive readings,
// rounded up to a power of two (log2 seconds). It is called once at start-up.
func MeasurePrecision(now func() time.Time) int8 {
	const reads = 200
	best := time.Duration(math.MaxInt64)
	prev := now()
	for range reads {
		t := now()
		if d := t.Sub(prev); d > 0 && d < best {
			best = d
		}
		prev = t
	}
	if best == time.Duration(math.MaxInt64) {
		return DefaultPrecision
	}
	// 2^k ns = 2^(k-29.9) s: round the exponent up.
	p := bits.Len64(uint64(best-1)) - 29
	p = max(p, -30)
	p = min(p, 0)
	return int8(p)
}
