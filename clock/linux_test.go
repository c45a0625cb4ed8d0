package clock

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fixedBase is a Kernel whose clocks stand still: enough for Null.
type fixedBase struct{}

func (fixedBase) Adjtimex(*unix.Timex) (int, error) { return 0, errors.New("fixedBase: no kernel") }
func (fixedBase) Now() (time.Time, time.Duration) {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Hour
}

// countingKernel counts the calls that reach it.
type countingKernel struct {
	calls int
	tx    unix.Timex
}

func (k *countingKernel) Adjtimex(tx *unix.Timex) (int, error) {
	k.calls++
	*tx = k.tx
	return unix.TIME_OK, nil
}
func (k *countingKernel) Now() (time.Time, time.Duration) { return fixedBase{}.Now() }

// The host's kernel, read only: modes 0 is the only call made here.
func TestLinuxReadsHostKernel(t *testing.T) {
	var tx unix.Timex
	state, err := Linux{}.Adjtimex(&tx)
	if err != nil {
		t.Fatalf("read kernel clock: %v", err)
	}
	if state < unix.TIME_OK || state > unix.TIME_ERROR {
		t.Errorf("clock state %d", state)
	}
	if tx.Tick < 9000 || tx.Tick > 11000 {
		t.Errorf("tick %d µs outside the kernel's range", tx.Tick)
	}
	// The same through the read-only view.
	if _, err := HostReadOnly().Adjtimex(&unix.Timex{}); err != nil {
		t.Errorf("read-only read: %v", err)
	}
}

// Now pairs realtime with monotonic time: over a short interval both
// advance alike, and the realtime reading is the time package's.
func TestLinuxNow(t *testing.T) {
	r1, m1 := Linux{}.Now()
	before := time.Now()
	var r2 time.Time
	var m2 time.Duration
	for range 1000 {
		r2, m2 = Linux{}.Now()
	}
	if m2 <= m1 {
		t.Fatalf("monotonic went from %v to %v", m1, m2)
	}
	if d := r2.Sub(r1) - (m2 - m1); d.Abs() > time.Millisecond {
		t.Errorf("realtime advanced %v, monotonic %v: they differ by %v", r2.Sub(r1), m2-m1, d)
	}
	if d := r2.Sub(before); d < 0 || d > time.Second {
		t.Errorf("realtime %v is %v from time.Now", r2, d)
	}
}

// The vDSO readings are the kernel's clocks: each lies between two
// clock_gettime system calls of the same clock. Reading allocates
// nothing (a daemon reads the clock at every event).
func TestLinuxNowIsTheKernels(t *testing.T) {
	var before, after [2]unix.Timespec
	ids := [2]int32{unix.CLOCK_MONOTONIC, unix.CLOCK_REALTIME}
	for i, id := range ids {
		if err := unix.ClockGettime(id, &before[i]); err != nil {
			t.Fatal(err)
		}
	}
	real, mono := Linux{}.Now()
	for i, id := range ids {
		if err := unix.ClockGettime(id, &after[i]); err != nil {
			t.Fatal(err)
		}
	}
	// A step of the realtime clock by another process between the reads
	// would break the order; a retry would hide it, so none.
	for i, got := range []int64{int64(mono), real.UnixNano()} {
		if got < before[i].Nano() || got > after[i].Nano() {
			t.Errorf("clock %d: vDSO read %d outside the system calls' [%d, %d]", ids[i], got, before[i].Nano(), after[i].Nano())
		}
	}
	if n := testing.AllocsPerRun(100, func() { Linux{}.Now() }); n != 0 {
		t.Errorf("Now allocates %.0f times, want 0", n)
	}
}

func TestLinuxNowTakesTheMiddle(t *testing.T) {
	reads := []unix.Timespec{{Sec: 100}, {Sec: 1_800_000_000, Nsec: 5}, {Sec: 100, Nsec: 1000}}
	i := 0
	l := Linux{gettime: func(id int32, ts *unix.Timespec) error {
		want := int32(unix.CLOCK_MONOTONIC)
		if i == 1 {
			want = unix.CLOCK_REALTIME
		}
		if id != want {
			t.Errorf("read %d: clock %d, want %d", i, id, want)
		}
		*ts = reads[i]
		i++
		return nil
	}}
	real, mono := l.Now()
	if want := time.Unix(1_800_000_000, 5); !real.Equal(want) {
		t.Errorf("realtime %v, want %v", real, want)
	}
	if want := 100*time.Second + 500; mono != want {
		t.Errorf("monotonic %v, want %v", mono, want)
	}
}

// EPERM from the kernel must reach the user as "need CAP_SYS_TIME": the
// error matches ErrPermission and syscall.EPERM, and Clock maps it.
func TestLinuxPermissionError(t *testing.T) {
	l := Linux{adjtime: func(_ int32, tx *unix.Timex) (int, error) {
		if tx.Modes == 0 {
			tx.Tick = nominalTickUS
			return unix.TIME_OK, nil
		}
		return 0, unix.EPERM
	}}
	_, err := l.Adjtimex(&unix.Timex{Modes: unix.ADJ_FREQUENCY})
	if !errors.Is(err, ErrPermission) || !errors.Is(err, syscall.EPERM) {
		t.Fatalf("err = %v: want ErrPermission and EPERM", err)
	}
	c, err := New(l)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(Update{FreqPPM: 1}, time.Hour); !errors.Is(err, ErrPermission) {
		t.Errorf("Clock.Apply: %v, want ErrPermission", err)
	}
}

func TestLinuxRetriesEINTR(t *testing.T) {
	calls := 0
	l := Linux{adjtime: func(_ int32, tx *unix.Timex) (int, error) {
		calls++
		if calls < 3 {
			return 0, unix.EINTR
		}
		tx.Tick = 10001
		return unix.TIME_ERROR, nil
	}}
	var tx unix.Timex
	state, err := l.Adjtimex(&tx)
	if err != nil || state != unix.TIME_ERROR || tx.Tick != 10001 || calls != 3 {
		t.Errorf("state %d err %v tick %d after %d calls", state, err, tx.Tick, calls)
	}
	l.adjtime = func(int32, *unix.Timex) (int, error) { return 0, unix.EINVAL }
	if _, err := l.Adjtimex(&unix.Timex{Modes: unix.ADJ_TICK}); !errors.Is(err, unix.EINVAL) {
		t.Errorf("EINVAL came back as %v", err)
	}
}

// A read-only kernel refuses every mode before the call reaches the
// kernel underneath.
func TestReadOnlyRefusesModes(t *testing.T) {
	modes := []uint32{unix.ADJ_FREQUENCY, unix.ADJ_TICK, unix.ADJ_STATUS, unix.ADJ_SETOFFSET | unix.ADJ_NANO,
		unix.ADJ_OFFSET_SINGLESHOT, unix.ADJ_OFFSET_SS_READ, unix.ADJ_MAXERROR, 1 << 31}
	for _, m := range modes {
		k := &countingKernel{}
		ro := NewReadOnly(k)
		if _, err := ro.Adjtimex(&unix.Timex{Modes: m}); !errors.Is(err, ErrReadOnly) {
			t.Errorf("modes %#x: err %v, want ErrReadOnly", m, err)
		}
		if k.calls != 0 {
			t.Errorf("modes %#x reached the kernel", m)
		}
	}
	k := &countingKernel{tx: unix.Timex{Tick: 10000, Freq: 65536}}
	var tx unix.Timex
	if _, err := NewReadOnly(k).Adjtimex(&tx); err != nil || k.calls != 1 || tx.Freq != 65536 {
		t.Errorf("read: err %v, calls %d, freq %d", err, k.calls, tx.Freq)
	}
}

// --no-clock-control on the host: a Clock over Null over the host's
// read-only kernel computes everything and changes nothing (Null never
// calls its base's Adjtimex, and ReadOnly would refuse it).
func TestNullOverHostReadOnly(t *testing.T) {
	n := NewNull(HostReadOnly())
	c, err := New(n)
	if err != nil {
		t.Fatal(err)
	}
	_, mono := c.Now()
	if _, err := c.Apply(Update{FreqPPM: 12.5, Slew: time.Millisecond, MaxRatePPM: 500, MinDuration: time.Second}, mono); err != nil {
		t.Fatal(err)
	}
	if err := c.Step(time.Second, mono); err != nil {
		t.Fatal(err)
	}
	var tx unix.Timex
	if _, err := n.Adjtimex(&tx); err != nil || tx.Freq == 0 {
		t.Errorf("virtual state: freq %d, err %v", tx.Freq, err)
	}
}
