package daemon_test

import (
	"bufio"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ntptool/ntptool/internal/sim"
)

// trace is one per-second sample of a run's trace.
type traceLine struct {
	t      int
	offset float64
}

func parseTrace(t *testing.T, text string) []traceLine {
	t.Helper()
	var out []traceLine
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sec, err1 := strconv.Atoi(f[0])
		off, err2 := strconv.ParseFloat(f[1], 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad trace line %q", sc.Text())
		}
		out = append(out, traceLine{sec, off})
	}
	return out
}

// A UTC leap second: the servers announce it and repeat a second at
// midnight; the engine hands the announcement to the kernel, which steps
// the clock back exactly once, at midnight, and the engine neither steps
// nor slews the second away afterwards (the clock stays on UTC).
func TestLeapSecondInsertedOnceAtMidnight(t *testing.T) {
	for _, del := range []bool{false, true} {
		name := map[bool]string{false: "insert", true: "delete"}[del]
		t.Run(name, func(t *testing.T) {
			sc, err := sim.LoadScenario("../bench/sim/A1.toml")
			if err != nil {
				t.Fatal(err)
			}
			const midnight = 86400 // the run's epoch is a UTC midnight
			sc.Duration = midnight + 4000
			sc.Leap = &sim.LeapSecond{At: midnight * time.Second, Announce: (midnight - 12*3600) * time.Second, Delete: del}
			var b strings.Builder
			if _, err := sc.Run(1, &b); err != nil {
				t.Fatal(err)
			}
			want := -1.0 // the clock's offset against uniform time after the leap
			if del {
				want = 1
			}
			var jumps []int
			lines := parseTrace(t, b.String())
			for i := 1; i < len(lines); i++ {
				if d := lines[i].offset - lines[i-1].offset; math.Abs(d) > 0.5 {
					jumps = append(jumps, lines[i].t)
					if math.Abs(d-want) > 0.001 {
						t.Errorf("clock moved by %.6f s at t=%d, want %+.0f s", d, lines[i].t, want)
					}
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
			for _, l := range lines {
				if l.t > midnight+1 && math.Abs(l.offset-want) > 0.001 {
					t.Fatalf("at t=%d the offset is %.6f s, want %+.0f s ± 1 ms: the engine moved the clock off UTC", l.t, l.offset, want)
				}
			}
		})
	}
}
