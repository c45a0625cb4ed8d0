package daemon_test

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ntptool/ntptool/internal/sim"
)

// jumpWatch reads a run's trace as it is written ("t offset ..." lines)
// and records the seconds at which the clock's offset against uniform time
// jumped by more than 0.5 s, and after the first jump the largest distance
// of the offset from after (the offset a clock on UTC has then).
type jumpWatch struct {
	after    float64
	partial  []byte
	n        int
	prev     float64
	jumps    []int
	moves    []float64
	maxAfter float64
	err      error
}

func (w *jumpWatch) Write(p []byte) (int, error) {
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		f := strings.Fields(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
		if len(f) < 2 {
			w.err = fmt.Errorf("bad trace line %q", f)
			continue
		}
		sec, err1 := strconv.Atoi(f[0])
		off, err2 := strconv.ParseFloat(f[1], 64)
		if err1 != nil || err2 != nil {
			w.err = fmt.Errorf("bad trace line %q", f)
			continue
		}
		if w.n > 0 && math.Abs(off-w.prev) > 0.5 {
			w.jumps = append(w.jumps, sec)
			w.moves = append(w.moves, off-w.prev)
		}
		if len(w.jumps) > 0 && sec > w.jumps[0] {
			w.maxAfter = math.Max(w.maxAfter, math.Abs(off-w.after))
		}
		w.n++
		w.prev = off
	}
}

// A UTC leap second: the servers announce it (for 12 hours, or for 3
// days, as servers with a leap-second file do) and repeat a second at the
// midnight that ends the month; the engine hands the announcement to the
// kernel on the last day of the month only, the kernel steps the clock
// back exactly once, at that midnight, and the engine neither steps nor
// slews the second away afterwards (the clock stays on UTC).
func TestLeapSecondInsertedOnceAtMidnight(t *testing.T) {
	tests := []struct {
		name     string
		del      bool
		announce int // seconds before the leap
	}{
		{"insert", false, 12 * 3600},
		{"delete", true, 12 * 3600},
		{"insert announced 3 days ahead (servers announce for weeks)", false, 3 * 86400},
	}
	for _, tc := range tests {
		del := tc.del
		t.Run(tc.name, func(t *testing.T) {
			sc, err := sim.LoadScenario("../bench/sim/A1.toml")
			if err != nil {
				t.Fatal(err)
			}
			// The run starts at a UTC midnight, days before the end of
			// December 2016 (a real leap second).
			midnight := tc.announce/86400*86400 + 86400
			sc.Epoch = time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Duration(midnight) * time.Second)
			sc.Duration = float64(midnight + 4000)
			sc.Leap = &sim.LeapSecond{At: time.Duration(midnight) * time.Second,
				Announce: time.Duration(midnight-tc.announce) * time.Second, Delete: del}
			want := -1.0 // the clock's move against uniform time at the leap
			if del {
				want = 1
			}
			w := jumpWatch{after: want}
			if _, err := sc.Run(1, &w); err != nil || w.err != nil {
				t.Fatal(err, w.err)
			}
			jumps := w.jumps
			for i, d := range w.moves {
				if math.Abs(d-want) > 0.001 {
					t.Errorf("clock moved by %.6f s at t=%d, want %+.0f s", d, jumps[i], want)
				}
			}
			at := midnight // the clock reaches 24:00:00 again (insert)
			if del {
				at = midnight - 1 // 23:59:59 is skipped
			}
			// The sample at a whole second of true time sees the jump
			// if the clock reached midnight by then (it was ahead), or
			// the next one (it was behind by microseconds).
			if len(jumps) != 1 || jumps[0] != at && jumps[0] != at+1 {
				t.Fatalf("clock stepped at %v, want exactly once, at t=%d (or the next sample)", jumps, at)
			}
			// After the leap the clock stays on UTC: within 1 ms of
			// uniform time + the leap, to the end of the run.
			if w.maxAfter > 0.001 {
				t.Fatalf("after the leap the offset strays %.6f s from %+.0f s: the engine moved the clock off UTC", w.maxAfter, want)
			}
		})
	}
}
