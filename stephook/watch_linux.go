package stephook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// timerfd is the real clockSource: a timerfd on CLOCK_REALTIME, read
// through the runtime's poller so that closing it ends a wait.
type timerfd struct {
	f *os.File
}

func newTimerfd() (*timerfd, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_REALTIME, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	return &timerfd{f: os.NewFile(uintptr(fd), "timerfd")}, nil
}

// arm sets the timer to expire in 100 years (absolute, so that only a
// clock set wakes it) with TFD_TIMER_CANCEL_ON_SET.
func (t *timerfd) arm() error {
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &now); err != nil {
		return err
	}
	spec := unix.ItimerSpec{Value: unix.Timespec{Sec: now.Sec + 100*365*86400}}
	raw, err := t.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.TimerfdSettime(int(fd), unix.TFD_TIMER_ABSTIME|unix.TFD_TIMER_CANCEL_ON_SET, &spec, nil)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("timerfd_settime: %w", serr)
	}
	return nil
}

// wait reads the timerfd: ECANCELED means the clock was set; an expiry
// (the clock set past the timer) counts as a set too.
func (t *timerfd) wait(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = t.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 8)
	for {
		_, err := t.f.Read(buf)
		switch {
		case err == nil || errors.Is(err, syscall.ECANCELED):
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, syscall.EINTR):
			continue
		default:
			return fmt.Errorf("read timerfd: %w", err)
		}
	}
}

func (t *timerfd) read() (time.Time, time.Duration) {
	var rt, bt unix.Timespec
	// Both errors are impossible for these clocks.
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &rt)
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &bt)
	return time.Unix(rt.Sec, rt.Nsec), time.Duration(rt.Nano() - bt.Nano())
}

func (t *timerfd) close() error { return t.f.Close() }
