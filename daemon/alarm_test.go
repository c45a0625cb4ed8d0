package daemon

import (
	"math"
	"testing"
	"time"
)

// The alarm goes off at its latest setting, whether that moved it sooner
// or later, at once for a time in the past, and never once disarmed; both
// the timerfd and the fallback timer.
func TestAlarm(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		a := newAlarm()
		if fallback {
			a.stop()
			a = newTimerAlarm()
		} else if a.f == nil {
			t.Fatal("no timerfd")
		}
		fires := func(within time.Duration) bool {
			select {
			case <-a.C():
				return true
			case <-time.After(within):
				return false
			}
		}
		in := func(d time.Duration) time.Duration { return hostMono() + d }
		steps := []struct {
			name  string
			set   []time.Duration // relative to now; MaxInt64: disarm
			fires bool
		}{
			{"in the past", []time.Duration{-time.Second}, true},
			{"moved sooner", []time.Duration{time.Hour, 10 * time.Millisecond}, true},
			{"moved later", []time.Duration{10 * time.Millisecond, time.Hour}, false},
			{"disarmed", []time.Duration{10 * time.Millisecond, math.MaxInt64}, false},
		}
		for _, st := range steps {
			for _, d := range st.set {
				if d == math.MaxInt64 {
					a.setAt(math.MaxInt64)
				} else {
					a.setAt(in(d))
				}
			}
			if got := fires(300 * time.Millisecond); got != st.fires {
				t.Errorf("fallback %v, %s (%v): went off %v, want %v", fallback, st.name, st.set, got, st.fires)
			}
		}
		a.stop()
	}
}
