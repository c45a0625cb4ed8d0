package stephook

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Detection is one step of the wall clock seen by a Watcher.
type Detection struct {
	// Step is the measured step: the change of CLOCK_REALTIME −
	// CLOCK_BOOTTIME across the clock set (positive: forward). Slews,
	// frequency changes and suspend do not change that difference; only
	// steps do.
	Step time.Duration
	// Own is true when the step matches one the daemon announced
	// (Watcher.Announce): it is the daemon's, not external.
	Own bool
	// Leap is true for a ±1 s step within 2 s of midnight UTC: most
	// likely the kernel applying a leap second.
	Leap bool
	// Old and New are the wall-clock time just before and just after.
	Old, New time.Time
}

// Event returns the ExternalStep event for the Runner.
func (d Detection) Event() Event {
	reason := fmt.Sprintf("external step of %+.6f s detected (CLOCK_REALTIME - CLOCK_BOOTTIME changed)", d.Step.Seconds())
	if d.Leap {
		reason += "; probably a leap second"
	}
	return Event{Kind: ExternalStep, Step: d.Step, Old: d.Old, New: d.New, Reason: reason}
}

// WatchOptions configure a Watcher; the zero value is usable.
type WatchOptions struct {
	// Tolerance is how far a measured step may differ from an announced
	// one (and how small a clock set may be to be ignored). Default 10 ms:
	// the two clocks are read a microsecond apart, but a step by
	// clock_settime is "now + delta" with "now" read before it.
	Tolerance time.Duration
	// Logger receives the detections; nil discards.
	Logger *slog.Logger

	src clockSource // nil: the timerfd
}

// Watcher detects steps of the wall clock made by anyone: a timerfd on
// CLOCK_REALTIME armed with TFD_TIMER_ABSTIME|TFD_TIMER_CANCEL_ON_SET,
// whose read fails with ECANCELED when the clock is set, re-armed after
// each. The daemon announces its own steps (Announce) so that they are
// reported as Own.
type Watcher struct {
	tol time.Duration
	log *slog.Logger
	src clockSource

	mu      sync.Mutex
	pending []time.Duration // announced own steps not seen yet
}

// clockSource is the kernel side of a Watcher; tests fake it.
type clockSource interface {
	// arm (re)arms the notification of the next clock set.
	arm() error
	// wait blocks until the clock was set since the last arm (nil), or
	// ctx ends.
	wait(ctx context.Context) error
	// read returns CLOCK_REALTIME and CLOCK_REALTIME − CLOCK_BOOTTIME.
	read() (realtime time.Time, offset time.Duration)
	close() error
}

// NewWatcher makes a Watcher; Run starts it.
func NewWatcher(opt WatchOptions) *Watcher {
	w := &Watcher{tol: opt.Tolerance, log: opt.Logger, src: opt.src}
	if w.tol <= 0 {
		w.tol = 10 * time.Millisecond
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	return w
}

// Announce tells the watcher that the daemon is about to step the clock by
// step, so that the step is reported as Own. Call it before the step; call
// Withdraw if the step is not made after all.
func (w *Watcher) Announce(step time.Duration) {
	w.mu.Lock()
	w.pending = append(w.pending, step)
	w.mu.Unlock()
}

// Withdraw forgets the announced steps not seen yet.
func (w *Watcher) Withdraw() {
	w.mu.Lock()
	w.pending = nil
	w.mu.Unlock()
}

// Run watches until ctx ends, calling handle (on Run's goroutine) for
// every clock step: external ones and, marked Own, the daemon's. It
// returns ctx's error, or the error that stopped the watch.
func (w *Watcher) Run(ctx context.Context, handle func(Detection)) error {
	src := w.src
	if src == nil {
		var err error
		if src, err = newTimerfd(); err != nil {
			return err
		}
	}
	defer src.close()
	// Arm before reading the baseline: a set after the read is seen.
	if err := src.arm(); err != nil {
		return err
	}
	_, base := src.read()
	for {
		if err := src.wait(ctx); err != nil {
			return err
		}
		// Re-arm first: a set from here on wakes the next wait, and one
		// before the read below is measured now.
		if err := src.arm(); err != nil {
			return err
		}
		now, cur := src.read()
		w.mu.Lock()
		d, rest := classify(base, cur, w.pending, w.tol)
		w.pending = rest
		w.mu.Unlock()
		base = cur
		if !d.Own && abs(d.Step) <= w.tol {
			w.log.Debug("clock set without a step", "step_seconds", d.Step.Seconds())
			continue
		}
		d.New, d.Old = now, now.Add(-d.Step)
		d.Leap = leapLike(d.Step, now, w.tol)
		w.log.Info("clock step detected", "step_seconds", d.Step.Seconds(), "own", d.Own, "leap", d.Leap)
		handle(d)
	}
}

// Watch is NewWatcher(opt).Run(ctx, handle), for callers with no own
// steps to announce.
func Watch(ctx context.Context, opt WatchOptions, handle func(Detection)) error {
	return NewWatcher(opt).Run(ctx, handle)
}

// classify measures a clock set from the offsets CLOCK_REALTIME −
// CLOCK_BOOTTIME before (base) and after (cur) it, against the own steps
// announced (pending): their sum (several steps before one wake-up), or
// one of them, within tol is the daemon's own step and is consumed;
// otherwise the step is external and pending is kept.
func classify(base, cur time.Duration, pending []time.Duration, tol time.Duration) (Detection, []time.Duration) {
	d := Detection{Step: cur - base}
	if len(pending) == 0 {
		return d, pending
	}
	var sum time.Duration
	for _, p := range pending {
		sum += p
	}
	if abs(d.Step-sum) <= tol {
		d.Own = true
		return d, nil
	}
	for i, p := range pending {
		if abs(d.Step-p) <= tol {
			d.Own = true
			return d, append(pending[:i:i], pending[i+1:]...)
		}
	}
	return d, pending
}

// leapLike reports a ±1 s step at most 2 s from midnight UTC.
func leapLike(step time.Duration, now time.Time, tol time.Duration) bool {
	if abs(abs(step)-time.Second) > tol {
		return false
	}
	u := now.UTC()
	sinceMidnight := time.Duration(u.Hour())*time.Hour + time.Duration(u.Minute())*time.Minute +
		time.Duration(u.Second())*time.Second + time.Duration(u.Nanosecond())
	return sinceMidnight <= 2*time.Second || sinceMidnight >= 24*time.Hour-2*time.Second
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
