package daemon_test

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/daemon"
	"github.com/ntptool/ntptool/internal/sim"
)

// A step is two-phase: proposed at the first sample, committed when the
// pre-step hooks are done (3 simulated seconds here) with the offset
// valid then, though replies kept coming meanwhile: the clock is 100 ppm
// fast and its frequency unknown at the proposal, so the offset grows by
// about 200 µs until the next sample teaches the frequency; the step
// made cancels the offset at commit time to within 10 µs. A path with
// 1 µs of jitter makes the estimate itself exact to a few µs.
func TestStepCommittedAfterTheHooks(t *testing.T) {
	sp := spec{offsets: []float64{0}, iburst: true, duration: 60,
		clock: "offset = 10\nfreq = 1e-4\nwander = 1e-9",
		extra: "[network]\njitter = 1e-6\n[hooks]\nseconds = 3\n"}
	sc, err := sim.ParseScenario([]byte(sp.text()), "step")
	if err != nil {
		t.Fatal(err)
	}
	for seed := 1; seed <= 20; seed++ {
		var commits []daemon.StepResult
		var before []float64
		sc.OnCommit = func(res daemon.StepResult, offsetBeforeS float64) {
			commits = append(commits, res)
			before = append(before, offsetBeforeS)
		}
		m, st, err := sc.RunStatus(seed, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(commits) != 1 {
			t.Fatalf("seed %d: %d steps committed, want 1", seed, len(commits))
		}
		res, off := commits[0], before[0]
		if miss := res.Step.Seconds() + off; math.Abs(miss) > 10e-6 {
			t.Errorf("seed %d: stepped by %v with the clock %.6f s off: %.1f µs left, want within 10 µs", seed, res.Step, off, miss*1e6)
		}
		if drift := (res.Step - res.Proposed).Seconds(); math.Abs(drift) < 100e-6 {
			t.Errorf("seed %d: committed %v, proposed %v: the hooks' 3 s should show (~200 µs)", seed, res.Step, res.Proposed)
		}
		if !st.Synced || st.StepPending || m.MaxAbsOffsetSettledS > 1e-3 {
			t.Errorf("seed %d: synced %v, step pending %v, max after settling %.0f µs", seed, st.Synced, st.StepPending, m.MaxAbsOffsetSettledS*1e6)
		}
	}
}

// failingKernel refuses every change, as the kernel does without
// CAP_SYS_TIME.
type failingKernel struct{ clock.Kernel }

func (k failingKernel) Adjtimex(tx *unix.Timex) (int, error) {
	if tx.Modes != 0 {
		return 0, syscall.EPERM
	}
	return k.Kernel.Adjtimex(tx)
}

// records is a slog handler that keeps the records.
type records struct {
	mu  sync.Mutex
	got []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, rec)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// A clock that refuses every change (EPERM): the error is in the status
// and the log, with the advice, and the engine keeps running: it polls
// and estimates on, and never claims to be synchronised.
func TestClockErrorsReported(t *testing.T) {
	sc, err := sim.LoadScenario("../bench/sim/A1.toml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Duration = 2000
	sc.WrapKernel = func(k clock.Kernel) clock.Kernel { return failingKernel{k} }
	log := &records{}
	sc.Logger = slog.New(log)
	_, st, err := sc.RunStatus(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.LastError, "CAP_SYS_TIME") || st.Errors < 2 {
		t.Errorf("status last error %q, %d errors; want the EPERM advice, repeatedly", st.LastError, st.Errors)
	}
	if st.Synced || st.Requests < 10 || st.OffsetS < 0.09 {
		t.Errorf("synced %v after %d requests, offset %.3f s: want unsynchronised, polling on, the 0.1 s offset seen", st.Synced, st.Requests, st.OffsetS)
	}
	var logged int
	for _, rec := range log.got {
		if rec.Level == slog.LevelError && strings.Contains(recordText(rec), "CAP_SYS_TIME") {
			logged++
		}
	}
	if logged == 0 || logged > 3 {
		t.Errorf("%d error records with the advice, want the error logged once or a few times, not per update", logged)
	}
}

func recordText(rec slog.Record) string {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	return b.String()
}

var _ = time.Second
