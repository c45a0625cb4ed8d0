package stephook

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	ms := time.Millisecond
	for _, tt := range []struct {
		name        string
		base, cur   time.Duration
		pending     []time.Duration
		wantStep    time.Duration
		wantOwn     bool
		wantPending int
	}{
		{"external back 1 h", 5000 * time.Second, 1400 * time.Second, nil, -3600 * time.Second, false, 0},
		{"own step", 0, 2*time.Second + 3*ms, []time.Duration{2 * time.Second}, 2*time.Second + 3*ms, true, 0},
		{"two own steps, one wake-up", 0, 3 * time.Second, []time.Duration{time.Second, 2 * time.Second}, 3 * time.Second, true, 0},
		{"one of two own steps", 0, 2 * time.Second, []time.Duration{-time.Hour, 2 * time.Second}, 2 * time.Second, true, 1},
		{"external while an own step is pending", 0, -time.Hour, []time.Duration{2 * time.Second}, -time.Hour, false, 1},
		{"own step beyond the tolerance", 0, 2*time.Second + 50*ms, []time.Duration{2 * time.Second}, 2*time.Second + 50*ms, false, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, rest := classify(tt.base, tt.cur, tt.pending, 10*ms)
			if d.Step != tt.wantStep || d.Own != tt.wantOwn || len(rest) != tt.wantPending {
				t.Errorf("step %v own %v pending %v, want %v %v %d", d.Step, d.Own, rest, tt.wantStep, tt.wantOwn, tt.wantPending)
			}
		})
	}
}

// fakeClock is a clockSource driven by the test: each value sent on sets
// is a clock set that moves the wall clock (and the offset) by that much.
type fakeClock struct {
	realtime time.Time
	offset   time.Duration
	sets     chan time.Duration
	arms     int
}

func (f *fakeClock) arm() error { f.arms++; return nil }
func (f *fakeClock) wait(ctx context.Context) error {
	select {
	case d, ok := <-f.sets:
		if !ok {
			return errors.New("no more sets")
		}
		f.realtime, f.offset = f.realtime.Add(d), f.offset+d
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (f *fakeClock) read() (time.Time, time.Duration) { return f.realtime, f.offset }
func (f *fakeClock) close() error                     { return nil }

func TestWatcherRun(t *testing.T) {
	src := &fakeClock{realtime: utc("2026-12-31T23:59:59Z"), offset: 1_790_000_000 * time.Second, sets: make(chan time.Duration, 8)}
	w := NewWatcher(WatchOptions{src: src})
	var got []Detection
	done := make(chan error)
	go func() {
		done <- w.Run(context.Background(), func(d Detection) {
			got = append(got, d)
			if len(got) == 1 {
				w.Announce(2 * time.Second) // the daemon's own step comes next
			}
		})
	}()
	src.sets <- -time.Second // the leap second at midnight
	src.sets <- 0            // a clock set that changes nothing: not reported
	src.sets <- 2 * time.Second
	src.sets <- -time.Hour
	close(src.sets)
	if err := <-done; err == nil || err.Error() != "no more sets" {
		t.Fatalf("Run: %v", err)
	}
	want := []Detection{
		{Step: -time.Second, Leap: true},
		{Step: 2 * time.Second, Own: true},
		{Step: -time.Hour},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d detections %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Step != w.Step || g.Own != w.Own || g.Leap != w.Leap || g.Old != g.New.Add(-g.Step) {
			t.Errorf("detection %d: %+v, want %+v", i, g, w)
		}
	}
	if ev := got[2].Event(); ev.Kind != ExternalStep || ev.Step != -time.Hour || ev.Reason == "" {
		t.Errorf("event %+v", ev)
	}
	if src.arms != 5 {
		t.Errorf("armed %d times, want 5 (once, then after each of 4 sets)", src.arms)
	}
}

// TestTimerfd arms the real timerfd (the host clock is never set here:
// that proof runs in the guest VM) and checks that a wait ends with its
// context and that the offset is the boot time's wall-clock date.
func TestTimerfd(t *testing.T) {
	tf, err := newTimerfd()
	if err != nil {
		t.Fatal(err)
	}
	defer tf.close()
	if err := tf.arm(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tf.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("wait: %v, want context.Canceled", err)
	}
	rt, off := tf.read()
	if boot := time.Unix(0, int64(off)); boot.After(rt) || boot.Year() < 2000 {
		t.Errorf("REALTIME - BOOTTIME = %v (boot at %v), realtime %v", off, boot, rt)
	}
	w := NewWatcher(WatchOptions{})
	if err := w.Run(ctx, func(Detection) { t.Error("no step can be seen") }); !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
}
