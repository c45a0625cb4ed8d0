package daemon_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/daemon"
	"github.com/ntptool/ntptool/internal/sim"
)

// watchedKernel counts the clock changes the engine makes (steps, and
// slews beyond the frequency range, which move the tick) and reads the
// simulated clock for the log handler.
type watchedKernel struct {
	clock.Kernel
	steps, tickChanges int
}

func (k *watchedKernel) Adjtimex(tx *unix.Timex) (int, error) {
	if tx.Modes&unix.ADJ_SETOFFSET != 0 {
		k.steps++
	}
	if tx.Modes&unix.ADJ_TICK != 0 && tx.Tick != 10000 {
		k.tickChanges++
	}
	return k.Kernel.Adjtimex(tx)
}

// stamped is a slog handler that keeps each record with the simulated
// monotonic time at which it was logged (the engine logs synchronously,
// on the simulation's goroutine).
type stamped struct {
	mu   sync.Mutex
	k    *watchedKernel
	recs []stampedRecord
}

type stampedRecord struct {
	mono time.Duration
	rec  slog.Record
}

func (h *stamped) Enabled(context.Context, slog.Level) bool { return true }
func (h *stamped) Handle(_ context.Context, rec slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var mono time.Duration
	if h.k != nil {
		_, mono = h.k.Now()
	}
	h.recs = append(h.recs, stampedRecord{mono, rec})
	return nil
}
func (h *stamped) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *stamped) WithGroup(string) slog.Handler      { return h }

// find returns the records with message msg.
func (h *stamped) find(msg string) []stampedRecord {
	var out []stampedRecord
	for _, r := range h.recs {
		if r.rec.Message == msg {
			out = append(out, r)
		}
	}
	return out
}

// hookScenario: one server, the clock 10 s ahead and 100 ppm fast, a
// path with 1 µs of jitter, pre-step hooks that take seconds and may
// fail, and the client's hooks.on_failure.
func hookScenario(t *testing.T, seconds float64, fail bool, policy string) *sim.Scenario {
	t.Helper()
	text := fmt.Sprintf(`name = "hooks"
duration = 600
[clock]
offset = 10
freq = 1e-4
wander = 1e-9
[network]
jitter = 1e-6
[[servers]]
offset = 0
[hooks]
seconds = %g
fail = %v
[client]
config = '''
[[source]]
server = "s1"
iburst = true
[hooks]
on_failure = "%s"
'''
`, seconds, fail, policy)
	sc, err := sim.ParseScenario([]byte(text), "hooks")
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// hookRun is one seed of a hook scenario with what it observed.
type hookRun struct {
	k       *watchedKernel
	log     *stamped
	commits []daemon.StepResult
	before  []float64     // the clock's true offset just before each commit
	at      time.Duration // monotonic time of the (last) commit
	m       sim.Metrics
	st      daemon.Status
}

func runHooks(t *testing.T, sc *sim.Scenario, seed int) *hookRun {
	t.Helper()
	r := &hookRun{log: &stamped{}}
	sc.WrapKernel = func(k clock.Kernel) clock.Kernel {
		r.k = &watchedKernel{Kernel: k}
		r.log.k = r.k
		return r.k
	}
	sc.Logger = slog.New(r.log)
	sc.OnCommit = func(res daemon.StepResult, offsetBeforeS float64) {
		r.commits = append(r.commits, res)
		r.before = append(r.before, offsetBeforeS)
		_, r.at = r.k.Now()
	}
	var err error
	r.m, r.st, err = sc.RunStatus(seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestStepHooksInTheSimulator is the engine side of the step hooks.
//
// Hooks that take 2 s: the step is committed 2 s after its proposal (of
// the clock's monotonic time, which runs 100 ppm fast: 2.0002 s), with
// the offset valid then, though the clock drifted ~200 µs meanwhile: it
// lands within 10 µs of the true time.
//
// Failing hooks with hooks.on_failure = "abort": the step is cancelled,
// never made (no ADJ_SETOFFSET), and the 10 s are slewed out at the
// fastest rate instead (the tick moves); the status and the log say so,
// and the clock is synchronised within 1 ms by the end. (The updates
// during the slew that are still within step.limit propose the step
// again; each runs the hooks and is cancelled.)
//
// With "hold": cancelled too, and the clock is left alone: no step, no
// slew, the status says it is held and why, the step is proposed again
// (with its hooks) at later updates, and the clock keeps its 10 s.
//
// With "auto", a failing exec hook does not stop the step (auto aborts
// only for a failed renewal of a wall-clock DHCP client).
func TestStepHooksInTheSimulator(t *testing.T) {
	const failed = "a pre-step hook failed (simulated)"
	t.Run("2s hooks: committed after them", func(t *testing.T) {
		sc := hookScenario(t, 2, false, "auto")
		for seed := 1; seed <= 10; seed++ {
			r := runHooks(t, sc, seed)
			props := r.log.find("step proposed")
			if len(r.commits) != 1 || len(props) != 1 || r.k.steps != 1 {
				t.Fatalf("seed %d: %d commits, %d proposals, %d ADJ_SETOFFSET; want 1 each", seed, len(r.commits), len(props), r.k.steps)
			}
			if wait := r.at - props[0].mono; wait < 2*time.Second || wait > 2*time.Second+time.Millisecond {
				t.Errorf("seed %d: committed %v after the proposal, want the hooks' 2 s (2.0002 s of a 100 ppm fast clock)", seed, wait)
			}
			res, off := r.commits[0], r.before[0]
			if miss := res.Step.Seconds() + off; math.Abs(miss) > 10e-6 {
				t.Errorf("seed %d: stepped by %v with the clock %.6f s off: %.1f µs left, want within 10 µs", seed, res.Step, off, miss*1e6)
			}
			if drift := (res.Step - res.Proposed).Seconds(); math.Abs(drift) < 50e-6 {
				t.Errorf("seed %d: committed %v, proposed %v: the 2 s of a 100 ppm fast clock should show", seed, res.Step, res.Proposed)
			}
			if !r.st.Synced || r.st.StepPending || r.st.StepCancelled != "" || r.m.MaxAbsOffsetSettledS > 1e-3 {
				t.Errorf("seed %d: synced %v, pending %v, cancelled %q, max after settling %.0f µs", seed, r.st.Synced, r.st.StepPending, r.st.StepCancelled, r.m.MaxAbsOffsetSettledS*1e6)
			}
		}
	})
	t.Run("abort: slewed instead", func(t *testing.T) {
		r := runHooks(t, hookScenario(t, 2, true, "abort"), 1)
		if len(r.commits) != 0 || r.k.steps != 0 {
			t.Fatalf("%d commits, %d ADJ_SETOFFSET: the step should be cancelled", len(r.commits), r.k.steps)
		}
		if r.k.tickChanges == 0 {
			t.Error("the tick never moved: 10 s must be slewed at the fastest rate (beyond the frequency's ±500 ppm)")
		}
		if !strings.Contains(r.st.StepCancelled, failed) || r.st.Held != "" {
			t.Errorf("status: cancelled %q, held %q; want the hooks' failure, not held", r.st.StepCancelled, r.st.Held)
		}
		// While the slew runs, the next updates within step.limit (3)
		// propose the step again, and its hooks run again: each proposal
		// is cancelled, and once the limit is reached there are no more.
		logged, props := r.log.find("step cancelled"), r.log.find("step proposed")
		if len(logged) == 0 || len(logged) > 3 || len(props) != len(logged) {
			t.Errorf("%d step proposals, %d cancelled: want each cancelled, at most step.limit = 3", len(props), len(logged))
		}
		for _, l := range logged {
			if text := recordText(l.rec); l.rec.Level != slog.LevelWarn || !strings.Contains(text, "slew_instead=true") || !strings.Contains(text, failed) {
				t.Errorf("log: %v %s", l.rec.Level, text)
			}
		}
		if !r.st.Synced || math.Abs(r.st.OffsetS) > 1e-3 || r.m.MaxAbsOffsetSettledS > 1e-3 {
			t.Errorf("after the slew: synced %v, offset %.6f s, max after settling %.0f µs", r.st.Synced, r.st.OffsetS, r.m.MaxAbsOffsetSettledS*1e6)
		}
	})
	t.Run("hold: the clock is left alone", func(t *testing.T) {
		r := runHooks(t, hookScenario(t, 2, true, "hold"), 1)
		if len(r.commits) != 0 || r.k.steps != 0 || r.k.tickChanges != 0 {
			t.Fatalf("%d commits, %d ADJ_SETOFFSET, %d tick changes: the clock should be held", len(r.commits), r.k.steps, r.k.tickChanges)
		}
		if !strings.Contains(r.st.StepCancelled, failed) || !strings.Contains(r.st.Held, "clock held") || r.st.Synced {
			t.Errorf("status: cancelled %q, held %q, synced %v; want held for the hooks' failure", r.st.StepCancelled, r.st.Held, r.st.Synced)
		}
		if props := r.log.find("step proposed"); len(props) < 2 {
			t.Errorf("%d step proposals: a held step is proposed again, with its hooks, at later updates", len(props))
		}
		logged := r.log.find("step cancelled")
		if len(logged) == 0 || !strings.Contains(recordText(logged[0].rec), "slew_instead=false") {
			t.Errorf("log: %d 'step cancelled' records %v", len(logged), logged)
		}
		if off := r.st.OffsetS; math.Abs(off-10) > 0.1 {
			t.Errorf("estimated offset %.3f s, want the 10 s kept", off)
		}
	})
	t.Run("auto: a failing exec hook does not stop the step", func(t *testing.T) {
		r := runHooks(t, hookScenario(t, 2, true, "auto"), 1)
		if len(r.commits) != 1 || r.k.steps != 1 || r.st.StepCancelled != "" {
			t.Errorf("%d commits, %d ADJ_SETOFFSET, cancelled %q: want the step made", len(r.commits), r.k.steps, r.st.StepCancelled)
		}
	})
}
