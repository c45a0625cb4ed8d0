package clock_test

import (
	"math"
	"testing"
	"time"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/internal/sim"
	"golang.org/x/sys/unix"
)

// Null keeps every change virtual: the clock underneath never moves, the
// virtual clock runs as if the changes were applied.
func TestNullIsVirtual(t *testing.T) {
	s, err := sim.New(sim.Config{Seed: 1, Clock: sim.ClockConfig{F0: 0}})
	if err != nil {
		t.Fatal(err)
	}
	base := s.Client()
	n := clock.NewNull(base)
	tests := []struct {
		name      string
		tx        unix.Timex
		advance   time.Duration
		wantDelta time.Duration // virtual − base, after the advance
		wantErr   bool
	}{
		{"+100 ppm for 100 s", unix.Timex{Modes: unix.ADJ_FREQUENCY, Freq: 100 * 65536}, 100 * time.Second, 10 * time.Millisecond, false},
		{"step +1.5 s", unix.Timex{Modes: unix.ADJ_SETOFFSET | unix.ADJ_NANO, Time: unix.Timeval{Sec: 1, Usec: 500_000_000}}, 0, 1510 * time.Millisecond, false},
		{"tick -10 % and no frequency for 1 s", unix.Timex{Modes: unix.ADJ_TICK | unix.ADJ_FREQUENCY, Tick: 9000}, time.Second, 1410 * time.Millisecond, false},
		{"bad tick changes nothing, not even the frequency", unix.Timex{Modes: unix.ADJ_TICK | unix.ADJ_FREQUENCY, Tick: 8000, Freq: 400 * 65536}, time.Second, 1310 * time.Millisecond, true},
		{"read only", unix.Timex{}, 0, 1310 * time.Millisecond, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := tc.tx
			if _, err := n.Adjtimex(&tx); (err != nil) != tc.wantErr {
				t.Fatalf("Adjtimex error %v, want error %v", err, tc.wantErr)
			}
			s.RunUntil(s.Now() + tc.advance)
			virt, _ := n.Now()
			real, _ := base.Now()
			if got := virt.Sub(real); (got - tc.wantDelta).Abs() > time.Microsecond {
				t.Errorf("virtual − base = %v, want %v", got, tc.wantDelta)
			}
			if base.Adjustments() != 0 {
				t.Fatalf("the clock underneath was adjusted %d times", base.Adjustments())
			}
		})
	}
}

// With clock.control = false the whole engine runs, and the simulated
// clock is never touched: it keeps its 100 ppm error.
func TestEngineWithoutClockControl(t *testing.T) {
	sc, err := sim.ParseScenario([]byte(`
name = "null"
seeds = [1, 1]
duration = 3000
[clock]
offset = 0.1
freq = 1e-4
[[servers]]
offset = 0
[client]
config = '''
[[source]]
server = "s1"
iburst = true
[clock]
control = false
'''
`), "null")
	if err != nil {
		t.Fatal(err)
	}
	m, st, err := sc.RunStatus(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.ClockAdjustmentsPerPoll != 0 || math.Abs(m.RMSFreqErrorPPB-1e5) > 1 || m.FirstBelow1msS != nil {
		t.Errorf("the simulated clock was disciplined: %+v", m)
	}
	// The engine believes it disciplines the (virtual) clock: synchronised,
	// the frequency learnt, the virtual offset small.
	if !st.Synced || math.Abs(st.FreqPPM+100) > 1 || math.Abs(st.OffsetS) > 200e-6 {
		t.Errorf("engine status %+v: want synchronised, frequency -100 ppm, |offset| < 200 µs", st)
	}
}
