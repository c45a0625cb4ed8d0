package stephook

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestRefreshed(t *testing.T) {
	s := time.Second
	lt := func(valid time.Duration) Lifetimes { return Lifetimes{Valid: valid, Preferred: valid} }
	tests := []struct {
		name               string
		before, after      time.Duration
		leaseTime, elapsed time.Duration
		want               bool
	}{
		{"grew", 60 * s, 120 * s, 0, 10 * time.Millisecond, true},
		{"unchanged at once", 120 * s, 120 * s, 0, 10 * time.Millisecond, false},
		{"decayed, no renewal", 120 * s, 119 * s, 0, 1500 * time.Millisecond, false},
		{"decayed by the rounding, no renewal", 120 * s, 119 * s, 0, 990 * time.Millisecond, false},
		// The post-step renewal right after the pre-step one (udhcpc: no
		// lease file, so no lease time): the full lease again, where it
		// would have decayed to 118.5 s.
		{"renewed back to the full lease", 120 * s, 120 * s, 0, 1500 * time.Millisecond, true},
		{"renewed, read a second later", 120 * s, 119 * s, 0, 2100 * time.Millisecond, true},
		{"within 2 s of the lease time", 120 * s, 119 * s, 120 * s, 0, true},
		{"forever", 120 * s, Forever, 0, 0, true},
		{"from forever", Forever, 120 * s, 0, 5 * s, false},
		{"negative elapsed is none", 120 * s, 120 * s, 0, -5 * s, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := refreshed(lt(tc.before), lt(tc.after), tc.leaseTime, tc.elapsed); got != tc.want {
				t.Errorf("refreshed(%v → %v, lease %v, after %v) = %v, want %v", tc.before, tc.after, tc.leaseTime, tc.elapsed, got, tc.want)
			}
		})
	}
}

// TestPoller: polls every 10 ms at first, each wait half as long again as
// the last, never longer than 100 ms.
func TestPoller(t *testing.T) {
	f := newFake()
	f.advance = true
	var p poller
	var waits []time.Duration
	for range 9 {
		before := f.now()
		if err := p.sleep(context.Background(), f); err != nil {
			t.Fatal(err)
		}
		waits = append(waits, f.now().Sub(before))
	}
	ms := time.Millisecond
	want := []time.Duration{10 * ms, 15 * ms, 22500 * time.Microsecond, 33750 * time.Microsecond,
		50625 * time.Microsecond, 75937500 * time.Nanosecond, 100 * ms, 100 * ms, 100 * ms}
	if !slices.Equal(waits, want) {
		t.Errorf("waits %v; want %v", waits, want)
	}
}
