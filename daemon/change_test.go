package daemon_test

import (
	"math"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/daemon"
	"github.com/ntptool/ntptool/internal/sim"
)

// The engine reports every clock change it makes (OnClockChange), in the
// order it makes them: the drift file's frequency at start, frequency-only
// updates while the step awaits its pre-step hooks, one step with the
// sources behind it, the update after it, then one update per clock update
// with the slew it started and the one it replaced, and the state changes
// (synchronised only once the step is made). Two servers that leave the
// third's side at 900 s leave no majority: holdover, with the reason.
func TestClockChangesReported(t *testing.T) {
	sp := spec{offsets: []float64{0, 0, 0}, iburst: true, duration: 1200,
		clock: "offset = 10\nfreq = 1e-4\nwander = 1e-9\ndrift = \"-90.0\"",
		extra: "[hooks]\nseconds = 2\n" +
			"[[events]]\nat = 900\nserver = 2\noffset = 0.5\n" +
			"[[events]]\nat = 900\nserver = 3\noffset = -0.5\n"}
	sc, err := sim.ParseScenario([]byte(sp.text()), "changes")
	if err != nil {
		t.Fatal(err)
	}
	for seed := 1; seed <= 3; seed++ {
		var got []daemon.ClockChange
		sc.OnClockChange = func(c daemon.ClockChange) { got = append(got, c) }
		var commits []daemon.StepResult
		sc.OnCommit = func(res daemon.StepResult, _ float64) { commits = append(commits, res) }
		_, st, err := sc.RunStatus(seed, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || got[0].Kind != daemon.ChangeUpdate || got[0].Reason != "drift file" ||
			got[0].OldFreqPPM != 0 || math.Abs(got[0].NewFreqPPM+90) > 1e-3 {
			t.Fatalf("seed %d: first change %+v, want the drift file's -90 ppm", seed, first(got))
		}
		kinds := map[daemon.ChangeKind]int{}
		var states []string
		var updates, pending int // after the step, and while it was pending
		var prevSlew time.Duration
		stepped := false
		for i, c := range got {
			kinds[c.Kind]++
			if c.Err != nil {
				t.Errorf("seed %d: change %d failed: %v", seed, i, c.Err)
			}
			if c.Time.IsZero() {
				t.Errorf("seed %d: change %d (%v) has no time", seed, i, c.Kind)
			}
			switch c.Kind {
			case daemon.ChangeStep:
				if len(commits) != 1 || c.Step != commits[0].Step || len(c.Sources) == 0 {
					t.Errorf("seed %d: step change %+v, commits %v: want the committed step and its sources", seed, c, commits)
				}
				if next := got[i+1]; next.Kind != daemon.ChangeUpdate || next.Reason != "after the step" || next.Slew != 0 || next.Status == nil || !next.Status.Synchronized {
					t.Errorf("seed %d: after the step %+v, want the frequency and status update", seed, next)
				}
				stepped, prevSlew = true, 0
			case daemon.ChangeUpdate:
				if c.Reason != "" {
					continue // the drift file, after the step
				}
				if c.Status == nil || len(c.Sources) == 0 {
					t.Fatalf("seed %d: update %d without a status or sources: %+v", seed, i, c)
				}
				if !stepped {
					// Before the step: the frequency only, unsynchronised.
					pending++
					if c.Slew != 0 || c.Status.Synchronized {
						t.Errorf("seed %d: update %d before the step: %+v", seed, i, c)
					}
					continue
				}
				updates++
				// The slew replaced had at most what it started with left
				// (to the kernel's rate quantum), in the same direction.
				if c.SlewLeft != 0 && (math.Signbit(c.SlewLeft.Seconds()) != math.Signbit(prevSlew.Seconds()) ||
					c.SlewLeft.Abs() > prevSlew.Abs()+prevSlew.Abs()/1000+time.Nanosecond) {
					t.Errorf("seed %d: update %d replaced a slew with %v left, but the last one started with %v", seed, i, c.SlewLeft, prevSlew)
				}
				if c.Slew != 0 && c.SlewDuration <= 0 {
					t.Errorf("seed %d: update %d slews %v over %v", seed, i, c.Slew, c.SlewDuration)
				}
				prevSlew = c.Slew
			case daemon.ChangeState:
				states = append(states, c.OldState.String()+">"+c.NewState.String()+":"+reasonSet(c.Reason))
				if c.NewState == daemon.Synchronised && !stepped {
					t.Errorf("seed %d: synchronised before the step", seed)
				}
			}
		}
		if kinds[daemon.ChangeStep] != 1 || pending == 0 {
			t.Errorf("seed %d: %d steps reported, %d updates while it was pending; want 1 and some", seed, kinds[daemon.ChangeStep], pending)
		}
		// The discipline counts the step and the updates after it.
		if updates+1 != st.Updates {
			t.Errorf("seed %d: %d updates reported after the step, the engine made %d with it", seed, updates, st.Updates)
		}
		// Every adjtimex call that changed the clock is a reported change,
		// or the end of a reported slew.
		if made := len(got) - kinds[daemon.ChangeState]; st.Adjustments < made || st.Adjustments > 2*made {
			t.Errorf("seed %d: %d adjtimex calls for %d reported changes", seed, st.Adjustments, made)
		}
		want := []string{"unsynchronised>synchronised:", "synchronised>holdover:reason"}
		if !slices.Equal(states[:min(2, len(states))], want) {
			t.Errorf("seed %d: state changes %v, want %v first", seed, states, want)
		}
		t.Logf("seed %d: %d changes (%v), %d updates while the step was pending, %d after, %d adjtimex calls, states %v",
			seed, len(got), kinds, pending, updates, st.Adjustments, states)
	}
}

func first(cs []daemon.ClockChange) any {
	if len(cs) == 0 {
		return "none"
	}
	return cs[0]
}

func reasonSet(r string) string {
	if r != "" {
		return "reason"
	}
	return ""
}

// still is a kernel whose clocks do not move: enough for the engine's
// bookkeeping of changes by others.
type still struct{}

func (still) Adjtimex(tx *unix.Timex) (int, error) { return 0, nil }
func (still) Now() (time.Time, time.Duration) {
	return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), time.Hour
}

type nopTransport struct{}

func (nopTransport) Send(int, []byte) (time.Time, time.Duration, error) {
	return time.Time{}, 0, nil
}

// Changes made by other processes are reported as such, without sources:
// a step (with the clock's reading before it) and a new frequency.
func TestExternalChangesReported(t *testing.T) {
	clk, err := clock.New(clock.NewNull(still{}))
	if err != nil {
		t.Fatal(err)
	}
	var got []daemon.ClockChange
	cfg := config.Default()
	e, err := daemon.New(&cfg, daemon.Options{Clock: clk, Transport: nopTransport{}, DeferSources: true,
		OnClockChange: func(c daemon.ClockChange) { got = append(got, c) }})
	if err != nil {
		t.Fatal(err)
	}
	real, _ := clk.Now()
	e.ExternalStep(2 * time.Second)
	e.KernelChanged(12.5)
	if len(got) != 2 {
		t.Fatalf("got %d changes, want 2: %+v", len(got), got)
	}
	step, freq := got[0], got[1]
	// The still clock did not move: the step was made 2 s before its reading.
	if step.Kind != daemon.ChangeExternalStep || step.Step != 2*time.Second || !step.Time.Equal(real.Add(-2*time.Second)) || step.Sources != nil {
		t.Errorf("external step reported as %+v, want +2 s made at %v", step, real.Add(-2*time.Second))
	}
	if freq.Kind != daemon.ChangeKernel || freq.OldFreqPPM != 0 || freq.NewFreqPPM != 12.5 || freq.Sources != nil {
		t.Errorf("frequency change reported as %+v, want 0 → 12.5 ppm", freq)
	}
	if s := daemon.ChangeKernel.String(); s != "kernel" {
		t.Errorf("ChangeKernel.String() = %q", s)
	}
}
