package clock

import (
	"errors"
	"fmt"
	"syscall"
	"time"
	_ "unsafe" // go:linkname of runtime.nanotime

	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/internal/rawsys"
)

// Linux is the Kernel of the host: clock_adjtime(CLOCK_REALTIME) and
// clock_gettime. The zero value is ready to use. Only a daemon run with
// clock control, inside a guest VM when tested, gives it a Clock: the
// host's tests use it read-only (ReadOnly) or not at all.
type Linux struct {
	// adjtime and gettime stand in for the system calls in this
	// package's tests (nil: the real ones), so that the error paths are
	// tested without a call that could change the host clock.
	adjtime func(clockid int32, tx *unix.Timex) (int, error)
	gettime func(clockid int32, ts *unix.Timespec) error
}

// ErrReadOnly is returned by a ReadOnly kernel asked to change something.
var ErrReadOnly = errors.New("read-only kernel clock: adjtimex with modes refused")

// Adjtimex is clock_adjtime(CLOCK_REALTIME, tx). EPERM (no CAP_SYS_TIME)
// comes back as an error that matches both ErrPermission and
// syscall.EPERM with errors.Is, so that Clock's mapping and the user's
// message ("need CAP_SYS_TIME ...") both survive the wrapping.
func (l Linux) Adjtimex(tx *unix.Timex) (int, error) {
	call := l.adjtime
	if call == nil {
		call = rawsys.ClockAdjtime // unseen by the scheduler: see rawsys
	}
	modes := tx.Modes
	for {
		state, err := call(unix.CLOCK_REALTIME, tx)
		switch {
		case err == nil:
			return state, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EPERM):
			return state, fmt.Errorf("clock_adjtime(CLOCK_REALTIME, modes %#x): %w (%w)", modes, ErrPermission, err)
		default:
			return state, fmt.Errorf("clock_adjtime(CLOCK_REALTIME, modes %#x): %w", modes, err)
		}
	}
}

// nanotime is the runtime's CLOCK_MONOTONIC reading (through the vDSO on
// Linux). The runtime keeps this linkname working for the packages that
// use it.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// Now reads CLOCK_MONOTONIC, CLOCK_REALTIME and CLOCK_MONOTONIC again and
// returns the realtime reading with the middle of the two monotonic ones:
// the best estimate of the monotonic time at the realtime reading, off by
// at most half the gap between them (a few hundred nanoseconds).
// clock_gettime fails only for a bad clock id or address (EINVAL,
// EFAULT), neither possible here, so its errors are not checked.
func (l Linux) Now() (time.Time, time.Duration) {
	get := l.gettime
	if get == nil {
		// Through the vDSO, as the runtime reads them, instead of a
		// system call each: an idle daemon's every event reads the clock,
		// and clock_gettime through syscall(2) costs a kernel entry and
		// the runtime's entersyscall/exitsyscall bookkeeping. No
		// Timespecs: passed by pointer, they would go to the heap.
		a := time.Duration(nanotime())
		r := time.Now().UnixNano()
		b := time.Duration(nanotime())
		return time.Unix(0, r), a + (b-a)/2
	}
	var m1, r, m2 unix.Timespec
	_ = get(unix.CLOCK_MONOTONIC, &m1)
	_ = get(unix.CLOCK_REALTIME, &r)
	_ = get(unix.CLOCK_MONOTONIC, &m2)
	a, b := time.Duration(m1.Nano()), time.Duration(m2.Nano())
	return time.Unix(r.Sec, r.Nsec), a + (b-a)/2
}

// ReadOnly is a Kernel that only reads: Adjtimex with any mode fails with
// ErrReadOnly before a system call is made. It is the base of Null for
// running without clock control (--no-clock-control) and the kernel state
// reader of the NTP server, so that even a bug in either cannot change
// the clock.
type ReadOnly struct {
	k Kernel
}

// NewReadOnly returns a read-only view of k.
func NewReadOnly(k Kernel) ReadOnly { return ReadOnly{k: k} }

// HostReadOnly is a read-only view of this host's kernel clock.
func HostReadOnly() ReadOnly { return ReadOnly{k: Linux{}} }

// Adjtimex reads the kernel clock state (Modes must be 0).
func (r ReadOnly) Adjtimex(tx *unix.Timex) (int, error) {
	if tx.Modes != 0 {
		return 0, fmt.Errorf("adjtimex modes %#x: %w", tx.Modes, ErrReadOnly)
	}
	return r.k.Adjtimex(tx)
}

// Now reads the realtime and monotonic clocks.
func (r ReadOnly) Now() (time.Time, time.Duration) { return r.k.Now() }
