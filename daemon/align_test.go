package daemon_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/daemon"
)

// Sources added at different moments, each polled on its own, are brought
// into one round within a few polls: after that every wake-up that sends
// sends to all of them (one wake-up a round instead of one per source). No
// source is ever polled later than its interval says, nor more than a
// quarter of it sooner, and each sends at most a few requests more than
// its interval asks for.
func TestPollsAlign(t *testing.T) {
	const run, settle = 20 * time.Minute, 5 * time.Minute
	tests := []struct {
		name  string
		polls []int           // each source's poll interval, log2 s
		added []time.Duration // when each source is added
	}{
		{"same interval", []int{4, 4, 4, 4}, []time.Duration{0, 3 * time.Second, 7 * time.Second, 12500 * time.Millisecond}},
		{"mixed intervals", []int{5, 4, 6, 4}, []time.Duration{0, 5 * time.Second, 21 * time.Second, 30 * time.Second}},
		{"the reference polls least often", []int{6, 4, 4, 5}, []time.Duration{0, 9 * time.Second, 40 * time.Second, 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := func(i int) config.Source {
				return config.Source{Server: fmt.Sprintf("s%d", i), Port: 123, MinPoll: tt.polls[i], MaxPoll: tt.polls[i], MaxSources: 1}
			}
			h := newHarnessOf(t, src(0))
			t0 := h.base.mono
			sent := map[int][]time.Duration{} // request times by source id
			rounds := map[time.Duration][]int{}
			record := func() {
				for _, r := range h.tr.sent {
					sent[r.id] = append(sent[r.id], h.base.mono-t0)
					rounds[h.base.mono-t0] = append(rounds[h.base.mono-t0], r.id)
				}
			}
			ids := []int{0}
			for i := 1; i < len(tt.polls); i++ {
				h.run(tt.added[i]-(h.base.mono-t0), record)
				if err := h.eng.AddSource(i, src(i)); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, i)
			}
			h.run(run-(h.base.mono-t0), record)

			// After settling, the wake-ups that send are those of the
			// shortest interval's grid, and at each of the longest
			// interval's steps all sources go together.
			shortest, longest := time.Duration(1<<62), time.Duration(0)
			for _, p := range tt.polls {
				shortest, longest = min(shortest, time.Second<<p), max(longest, time.Second<<p)
			}
			wakes, full := 0, 0
			for at, who := range rounds {
				if at >= settle {
					wakes++
					if len(who) == len(ids) {
						full++
					}
				}
			}
			if limit := int((run-settle)/shortest) + 2; wakes > limit {
				t.Errorf("%d wake-ups sent requests after %v, want ≤ %d (one a round)", wakes, settle, limit)
			}
			if want := int((run-settle)/longest) - 1; full < want {
				t.Errorf("%d rounds with all %d sources after %v, want ≥ %d", full, len(ids), settle, want)
			}
			for _, id := range ids {
				interval := time.Second << tt.polls[id]
				times := sent[id]
				for k := 1; k < len(times); k++ {
					gap := times[k] - times[k-1]
					if gap > interval+time.Millisecond || gap < interval*3/4-time.Millisecond {
						t.Errorf("source %d: polls %v and %v are %v apart, want within [¾, 1] × %v", id, times[k-1], times[k], gap, interval)
					}
				}
				if span := times[len(times)-1] - times[0]; len(times) > int(span/interval)+1+4 {
					t.Errorf("source %d: %d requests over %v at %v, want ≤ %d", id, len(times), span, interval, int(span/interval)+5)
				}
			}
		})
	}
}

// The replies of a round taken in one Hold … Release make one clock
// update, not one each: a quarter of the adjustments with four sources,
// and the same synchronisation.
func TestBatchedReplies(t *testing.T) {
	adjustments := map[bool]int{}
	for _, batch := range []bool{false, true} {
		h := newHarness(t, "a", "b", "c", "d")
		h.batch = batch
		h.run(10*time.Minute, nil)
		st := h.eng.Status()
		real, _ := h.null.Now()
		if off := real.Sub(h.base.real); st.State != daemon.Synchronised || off.Abs() > 10*time.Microsecond {
			t.Errorf("batch %v: after 10 min %v, clock off by %v; want synchronised within 10 µs", batch, st.State, off)
		}
		adjustments[batch] = st.Adjustments
		t.Logf("batch %v: %d adjustments, offset %v", batch, st.Adjustments, real.Sub(h.base.real))
	}
	if adjustments[true] > adjustments[false]/3 {
		t.Errorf("%d clock adjustments in batches against %d one reply at a time, want ≤ a third", adjustments[true], adjustments[false])
	}
}
