package daemon

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ntptool/ntptool/audit"
	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/control"
	"github.com/ntptool/ntptool/metrics"
	"github.com/ntptool/ntptool/stephook"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// One clock change gives at most one entry per thing an auditor asks
// about: the step with its hooks (waiting for the post-step ones), one
// slew entry per clock update carrying the frequency set in the same
// call, a frequency entry when only the frequency changed, nothing for the
// kernel's error estimates alone, a leap entry when the announcement
// changes, state changes, and changes by others; dry runs and refusals
// are not applied.
func TestEntriesFor(t *testing.T) {
	src := []string{"a.example (192.0.2.1:123)"}
	pre := []audit.HookRun{{Name: "dhclient[7]", Phase: "pre_step", Result: "ok", DurationSeconds: 0.1}}
	x := entryContext{control: true, sources: src, preHooks: pre, threshold: time.Second, proposed: 2999 * time.Millisecond, driftFile: "/var/lib/ntptool/drift"}
	synced := &clock.Status{Synchronized: true, MaxError: time.Millisecond}
	eperm := errors.New("need CAP_SYS_TIME")
	noControl := x
	noControl.control = false
	withLeap := x
	withLeap.leap = 1
	for _, tt := range []struct {
		name     string
		c        ClockChange
		x        entryContext
		want     []audit.Entry
		wantWait stephook.Kind
		wantLeap int
	}{
		{"step", ClockChange{Kind: ChangeStep, Time: t0, Step: 3 * time.Second}, x,
			[]audit.Entry{audit.StepEntry(t0, 3*time.Second, "offset -3.000000 s beyond step.threshold 1s (+2.999000 s when proposed, before the pre-step hooks)", src, pre, true)},
			stephook.PostStep, 0},
		{"step refused by the kernel", ClockChange{Kind: ChangeStep, Time: t0, Step: 3 * time.Second, Err: eperm}, x,
			[]audit.Entry{func() audit.Entry {
				e := audit.StepEntry(t0, 3*time.Second, "offset -3.000000 s beyond step.threshold 1s (+2.999000 s when proposed, before the pre-step hooks)", src, pre, false)
				e.Error = "need CAP_SYS_TIME"
				return e
			}()}, 0, 0},
		{"step, dry run", ClockChange{Kind: ChangeStep, Time: t0, Step: 2999 * time.Millisecond}, noControl,
			[]audit.Entry{audit.StepEntry(t0, 2999*time.Millisecond, "offset -2.999000 s beyond step.threshold 1s", src, pre, false)},
			stephook.PostStep, 0},
		{"slew", ClockChange{Kind: ChangeUpdate, Time: t0, Slew: -250 * time.Microsecond, SlewDuration: 16 * time.Second, SlewLeft: 3 * time.Microsecond,
			OldFreqPPM: 12.5, NewFreqPPM: 12.625, Status: synced}, x,
			[]audit.Entry{func() audit.Entry {
				e := audit.SlewEntry(t0, 3*time.Microsecond, -250*time.Microsecond, "clock update: offset +0.000250000 s slewed out over 16 s", src, true)
				e.Frequency = &audit.FrequencyChange{Old: 12.5, New: 12.625}
				return e
			}()}, 0, 0},
		{"slew instead of a cancelled step, with its hooks", ClockChange{Kind: ChangeUpdate, Time: t0, Slew: -2 * time.Second, SlewDuration: 24 * time.Second,
			OldFreqPPM: 1, NewFreqPPM: 1, Status: synced, Reason: "step cancelled: pre-step hooks: renewal failed"}, x,
			[]audit.Entry{func() audit.Entry {
				e := audit.SlewEntry(t0, 0, -2*time.Second, "step cancelled: pre-step hooks: renewal failed; clock update: offset +2.000000000 s slewed out over 24 s", src, true)
				e.Frequency, e.Hooks = &audit.FrequencyChange{Old: 1, New: 1}, pre
				return e
			}()}, 0, 0},
		{"a slew ended early", ClockChange{Kind: ChangeUpdate, Time: t0, SlewLeft: time.Microsecond, OldFreqPPM: 1, NewFreqPPM: 1, Status: synced}, x,
			[]audit.Entry{func() audit.Entry {
				e := audit.SlewEntry(t0, time.Microsecond, 0, "clock update: the slew in progress ended, the offset is within the noise", src, true)
				e.Frequency = &audit.FrequencyChange{Old: 1, New: 1}
				return e
			}()}, 0, 0},
		{"drift file", ClockChange{Kind: ChangeUpdate, Time: t0, NewFreqPPM: -90, Reason: "drift file"}, x,
			[]audit.Entry{audit.FrequencyEntry(t0, 0, -90, "drift file /var/lib/ntptool/drift", src, true)}, 0, 0},
		{"frequency while a step is pending", ClockChange{Kind: ChangeUpdate, Time: t0, OldFreqPPM: -90, NewFreqPPM: -90.5, Status: &clock.Status{}}, x,
			[]audit.Entry{audit.FrequencyEntry(t0, -90, -90.5, "clock update while a step awaits its pre-step hooks", src, true)}, 0, 0},
		{"frequency after the step, dry run", ClockChange{Kind: ChangeUpdate, Time: t0, OldFreqPPM: -90, NewFreqPPM: -91, Status: synced, Reason: "after the step"}, noControl,
			[]audit.Entry{audit.FrequencyEntry(t0, -90, -91, "after the step", src, false)}, 0, 0},
		{"the kernel's error estimates alone", ClockChange{Kind: ChangeUpdate, Time: t0, OldFreqPPM: 3, NewFreqPPM: 3, Status: synced}, x, nil, 0, 0},
		{"leap second announced", ClockChange{Kind: ChangeUpdate, Time: t0, OldFreqPPM: 3, NewFreqPPM: 3, Status: &clock.Status{Synchronized: true, Leap: 1}}, x,
			[]audit.Entry{audit.LeapEntry(t0, 0, 1, "announced by the combined sources", src, true)}, 0, 1},
		{"leap second kept", ClockChange{Kind: ChangeUpdate, Time: t0, OldFreqPPM: 3, NewFreqPPM: 3, Status: &clock.Status{Synchronized: true, Leap: 1}}, withLeap, nil, 0, 1},
		{"leap second refused", ClockChange{Kind: ChangeUpdate, Time: t0, OldFreqPPM: 3, NewFreqPPM: 3, Status: &clock.Status{Leap: -1}, Err: eperm}, x, nil, 0, 0},
		{"synchronised", ClockChange{Kind: ChangeState, Time: t0, OldState: Unsynchronised, NewState: Synchronised}, x,
			[]audit.Entry{{Time: t0, Kind: audit.KindStatus, Old: "unsynchronised", New: "synchronised", Reason: "the clock is corrected from the combined sources", Sources: src, Applied: true}}, 0, 0},
		{"holdover", ClockChange{Kind: ChangeState, Time: t0, OldState: Synchronised, NewState: Holdover, Reason: "no majority"}, noControl,
			[]audit.Entry{{Time: t0, Kind: audit.KindStatus, Old: "synchronised", New: "holdover", Reason: "no majority", Sources: src}}, 0, 0},
		{"external step", ClockChange{Kind: ChangeExternalStep, Time: t0, Step: -time.Hour}, entryContext{extReason: "external step of -3600 s detected"},
			[]audit.Entry{audit.ExternalEntry(t0, t0.Add(-time.Hour), "external step of -3600 s detected", nil)}, stephook.ExternalStep, 0},
		{"frequency set by another process", ClockChange{Kind: ChangeKernel, Time: t0, OldFreqPPM: 3, NewFreqPPM: 40}, entryContext{extReason: "frequency changed"},
			[]audit.Entry{{Time: t0, Kind: audit.KindExternal, Old: 3.0, New: 40.0, Unit: "ppm", Reason: "another process changed the kernel clock: frequency changed; the daemon re-bases on it", Applied: true}}, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, wait, leap := entriesFor(tt.c, tt.x)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("entries (-want +got)\n%s", diff)
			}
			if wait != tt.wantWait || leap != tt.wantLeap {
				t.Errorf("wait %v, leap %d; want %v and %d", wait, leap, tt.wantWait, tt.wantLeap)
			}
			for _, e := range got {
				if !e.Kind.Valid() || e.Time.IsZero() {
					t.Errorf("entry %+v would be refused by the journal", e)
				}
			}
		})
	}
}

// The metrics carry the control snapshot's values: the same numbers as
// ntptool status --json, with the sources' states in the metrics' words.
func TestMetricsSnapshot(t *testing.T) {
	snap := &control.Snapshot{Time: t0, Status: control.Status{
		SyncState: control.StateSynchronised, ClockControl: true, Stratum: 3,
		SystemTimeOffsetSeconds: -1.5e-6, FrequencyPPM: 12.5, SkewPPM: 0.02, RootDelaySeconds: 0.02, RootDispersionSeconds: 0.001, Leap: control.LeapInsert,
	}, Sources: []control.Source{
		{State: control.SourceSelected, Name: "a", Address: "192.0.2.1:123", Stratum: 2, Reach: 0o377, PollLog2: 6,
			LastSample: &control.Sample{OffsetSeconds: -1e-6, DelaySeconds: 3e-4, JitterSeconds: 2e-6}},
		{State: control.SourceNotCombined, Name: "p", Address: "192.0.2.2:123", Stratum: 2, Reach: 1, PollLog2: -1},
		{State: control.SourceTooVariable, Name: "q", Address: "192.0.2.3:123"},
	}}
	tot := newTotals()
	tot.steps, tot.slews, tot.stepped = 1, 20, 3.5
	tot.hookRuns["dhclient"], tot.hookFails["dhclient"] = 2, 1
	want := &metrics.Snapshot{
		Time: t0, Synchronized: true, SyncState: "synchronised", ClockControl: true, OffsetSeconds: -1.5e-6, FrequencyPPM: 12.5, SkewPPM: 0.02,
		RootDelaySeconds: 0.02, RootDispersionSeconds: 0.001, RootDistanceSeconds: 0.011, Stratum: 3, Leap: 1,
		Sources: []metrics.Source{
			{Name: "a", Address: "192.0.2.1:123", Reach: 255, OffsetSeconds: -1e-6, DelaySeconds: 3e-4, JitterSeconds: 2e-6, PollSeconds: 64, Stratum: 2, State: "selected"},
			{Name: "p", Address: "192.0.2.2:123", Reach: 1, PollSeconds: 0.5, Stratum: 2, State: "candidate"},
			{Name: "q", Address: "192.0.2.3:123", PollSeconds: 1, State: "too_variable"},
		},
		Totals: metrics.Totals{Steps: 1, Slews: 20, SteppedSeconds: 3.5, HookRuns: map[string]uint64{"dhclient": 2}, HookFailures: map[string]uint64{"dhclient": 1}, AdjtimexCalls: 44},
	}
	got := metricsSnapshot(snap, tot, 44)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	tot.hookRuns["dhclient"]++
	if got.Totals.HookRuns["dhclient"] != 2 {
		t.Error("the snapshot shares the loop's counters")
	}
}

func TestStatusLine(t *testing.T) {
	for _, tt := range []struct {
		name string
		st   control.Status
		srcs []control.Source
		want string
	}{
		{"synchronised", control.Status{SyncState: control.StateSynchronised, ClockControl: true, ReferenceName: "a.example", ReferenceAddress: "192.0.2.1:123", SystemTimeOffsetSeconds: 1.25e-5},
			nil, "synchronised to a.example (192.0.2.1:123), offset +0.000013 s"},
		{"dry run", control.Status{SyncState: control.StateSynchronised, ReferenceName: "a", ReferenceAddress: "192.0.2.1:123"},
			nil, "synchronised to a (192.0.2.1:123), offset +0.000000 s [no clock control]"},
		{"waiting for a step", control.Status{SyncState: control.StateUnsynchronised, ClockControl: true, SystemTimeOffsetSeconds: -3},
			[]control.Source{{State: control.SourceSelected, Name: "a", Address: "192.0.2.1:123"}}, "not synchronised; best source a (192.0.2.1:123), offset -3.000000 s"},
		{"nothing yet", control.Status{SyncState: control.StateUnsynchronised, ClockControl: true, LastError: "no source resolved"},
			nil, "not synchronised: no usable source yet; no source resolved"},
		{"holdover", control.Status{SyncState: control.StateHoldover, ClockControl: true, FrequencyPPM: -7.5},
			nil, "holdover: no selectable source, running on the learned frequency (-7.500 ppm)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := statusLine(&control.Snapshot{Status: tt.st, Sources: tt.srcs}); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// A directory made for the run user gets its own mode; the parents made
// on the way are 0755, so that the user can reach it.
func TestMkdirs(t *testing.T) {
	for _, tt := range []struct {
		name string
		rel  string
		perm fs.FileMode
		want map[string]fs.FileMode
	}{
		{"journal under missing parents", "var/log/ntptool", 0o750, map[string]fs.FileMode{"var": 0o755, "var/log": 0o755, "var/log/ntptool": 0o750}},
		{"socket directory", "run/ntptool", 0o755, map[string]fs.FileMode{"run": 0o755, "run/ntptool": 0o755}},
		{"existing directory left alone", ".", 0o700, map[string]fs.FileMode{".": 0o755}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.Chmod(root, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := mkdirs(filepath.Join(root, tt.rel), tt.perm); err != nil {
				t.Fatal(err)
			}
			for rel, want := range tt.want {
				fi, err := os.Stat(filepath.Join(root, rel))
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode().Perm(); got != want {
					t.Errorf("%s: mode %v, want %v", rel, got, want)
				}
			}
		})
	}
}
