package daemon

import (
	"math"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/internal/rawsys"
)

// alarm is the loop's timer for the engine's deadlines, at an absolute
// CLOCK_MONOTONIC time: a timerfd in the runtime's poller. It differs from
// a Go timer in two ways that each cost wake-ups at every poll round:
//
//   - A Go timer moved later still wakes the process at its earlier time
//     (the runtime adjusts its timer heap lazily), and the loop's deadline
//     moves later at every round: from the retry of the requests just sent
//     to the end of the slew their replies started, a few milliseconds
//     later. A timerfd moves without a stray wake-up.
//   - A Go timer's expiry comes through epoll_wait's timeout, which the
//     kernel lets run late by 0.1 % (60 ms on a 64 s poll), while the
//     runtime's sysmon thread, which sleeps until the same timer, wakes on
//     time and polls every 10 ms until the process has run. A timerfd goes
//     off on time.
//
// It is set and read with raw system calls (see rawsys), which do not
// wake the runtime's sysmon thread. Without a timerfd the alarm is a Go
// timer.
//
// Only one goroutine (the loop) sets it.
type alarm struct {
	c     chan struct{} // receives at each expiry
	at    time.Duration // the armed time (CLOCK_MONOTONIC); MaxInt64: none
	f     *os.File      // the timerfd; nil: timer
	rc    syscall.RawConn
	timer *time.Timer
}

func newAlarm() *alarm {
	a := &alarm{c: make(chan struct{}, 1), at: math.MaxInt64}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err == nil {
		a.f = os.NewFile(uintptr(fd), "timerfd")
		if a.rc, err = a.f.SyscallConn(); err != nil {
			a.f.Close()
			a.f = nil
		}
	}
	if a.f == nil {
		return newTimerAlarm()
	}
	go a.read()
	return a
}

// newTimerAlarm is the alarm without a timerfd: a Go timer.
func newTimerAlarm() *alarm {
	a := &alarm{c: make(chan struct{}, 1), at: math.MaxInt64}
	a.timer = time.AfterFunc(time.Hour, a.signal)
	a.timer.Stop()
	return a
}

// C receives when the alarm goes off. A signal may come late from an
// earlier setting: the engine's Wakeup does only what is due.
func (a *alarm) C() <-chan struct{} { return a.c }

// setAt makes the alarm go off at monotonic time at (at once if that has
// passed; never for math.MaxInt64), replacing any earlier setting. An
// unchanged setting costs nothing.
func (a *alarm) setAt(at time.Duration) {
	if at == a.at {
		return
	}
	a.at = at
	if a.f == nil {
		if at == math.MaxInt64 {
			a.timer.Stop()
		} else {
			a.timer.Reset(at - hostMono())
		}
		return
	}
	var spec unix.ItimerSpec // zero: disarmed
	if at != math.MaxInt64 {
		spec.Value = unix.NsecToTimespec(max(at, 1).Nanoseconds())
	}
	var err error
	if cerr := a.rc.Control(func(fd uintptr) { err = rawsys.TimerfdSettime(int(fd), unix.TFD_TIMER_ABSTIME, &spec) }); cerr != nil {
		err = cerr
	}
	if err != nil && at != math.MaxInt64 {
		// Cannot happen for a valid timerfd; go off now rather than never.
		a.signal()
	}
}

func (a *alarm) signal() {
	select {
	case a.c <- struct{}{}:
	default:
	}
}

// read turns the timerfd's expiries into signals until it is closed. It
// reads through the poller with raw reads (see rawsys), not os.File.Read.
func (a *alarm) read() {
	buf := make([]byte, 8)
	for {
		var rerr error
		err := a.rc.Read(func(fd uintptr) bool {
			for {
				if _, rerr = rawsys.Read(int(fd), buf); rerr != unix.EINTR {
					return rerr != unix.EAGAIN // EAGAIN: wait for the next expiry
				}
			}
		})
		if err != nil || rerr != nil {
			return // closed
		}
		a.signal()
	}
}

// stop releases the alarm.
func (a *alarm) stop() {
	if a.f == nil {
		a.timer.Stop()
		return
	}
	a.f.Close()
}
