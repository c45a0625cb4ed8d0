package oneshot

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ntptool/ntptool/audit"
	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/stephook"
)

// TestStep: a manual step on a simulated kernel (never the host's) is
// made by exactly the amount asked, between the pre-step and the
// post-step hooks, with the events' times and the journal entry right.
func TestStep(t *testing.T) {
	t.Run("by -1h", func(t *testing.T) {
		k := newKernel(t, 0)
		h := &hooks{k: k, preTakes: 3 * time.Second}
		j := &journalRec{}
		res, err := Step(context.Background(), StepRequest{By: -time.Hour, Reason: "ntptool step --by -1h"},
			Options{Kernel: k, Hooks: h, Journal: j, CanSetTime: func() bool { return true }})
		if err != nil {
			t.Fatal(err)
		}
		// Exactly: the simulated clock is exact to the nanosecond.
		if got := k.Offset(); got != -3600 || len(k.steps) != 1 || k.steps[0] != -time.Hour {
			t.Errorf("clock offset %v s after steps %v, want exactly -3600 s in one ADJ_SETOFFSET", got, k.steps)
		}
		if len(h.run) != 2 || h.run[0].Kind != stephook.PreStep || h.run[1].Kind != stephook.PostStep || len(h.dry) != 0 {
			t.Fatalf("hooks run %+v, dry %+v: want pre-step then post-step", h.run, h.dry)
		}
		// The pre-step hooks see the clock before the step, the post-step
		// ones after it; the events carry the times of the step itself,
		// made when the 3 s of pre-step hooks were over.
		t0 := epoch.Add(0)
		stepAt := t0.Add(3 * time.Second)
		want := []stephook.Event{
			{Kind: stephook.PreStep, Step: -time.Hour, Old: t0, New: t0.Add(-time.Hour), Reason: "ntptool step --by -1h"},
			{Kind: stephook.PostStep, Step: -time.Hour, Old: stepAt, New: stepAt.Add(-time.Hour), Reason: "ntptool step --by -1h"},
		}
		if diff := cmp.Diff(want, h.run); diff != "" {
			t.Errorf("events (-want +got)\n%s", diff)
		}
		if !h.clockAt[0].Equal(t0) || !h.clockAt[1].Equal(stepAt.Add(-time.Hour)) {
			t.Errorf("clock at the hooks %v, want %v then %v", h.clockAt, t0, stepAt.Add(-time.Hour))
		}
		if !res.Stepped || res.Step != -time.Hour || !res.Old.Equal(stepAt) || !res.New.Equal(stepAt.Add(-time.Hour)) {
			t.Errorf("result %+v", res)
		}
		if len(j.entries) != 1 {
			t.Fatalf("journal %+v, want 1 entry", j.entries)
		}
		e := j.entries[0]
		wantE := audit.Entry{Time: stepAt, Kind: audit.KindStep, Old: "2025-01-01T00:00:03Z", New: "2024-12-31T23:00:03Z",
			DeltaSeconds: -3600, Reason: "ntptool step --by -1h", Applied: true, Hooks: []audit.HookRun{
				{Name: "/hook/pre-step", Phase: "pre_step", Result: "ok", DurationSeconds: 1},
				{Name: "/hook/post-step", Phase: "post_step", Result: "ok", DurationSeconds: 1}}}
		if diff := cmp.Diff(wantE, e); diff != "" {
			t.Errorf("journal entry (-want +got)\n%s", diff)
		}
	})
	t.Run("to a time, after slow hooks", func(t *testing.T) {
		k := newKernel(t, 0)
		h := &hooks{k: k, preTakes: 5 * time.Second}
		to := time.Date(2030, 6, 1, 12, 0, 0, 250_000_000, time.UTC)
		res, err := Step(context.Background(), StepRequest{To: to}, Options{Kernel: k, Hooks: h})
		if err != nil {
			t.Fatal(err)
		}
		// The pre-step event proposes the step as it was then; the step
		// made is computed after the hooks, so that the clock reads to.
		if now, _ := k.Now(); !now.Equal(to) {
			t.Errorf("clock reads %v after the step, want %v", now, to)
		}
		if h.run[0].Step != to.Sub(epoch) || res.Step != to.Sub(epoch.Add(5*time.Second)) || h.run[1].Step != res.Step {
			t.Errorf("proposed %v, made %v (post-step %v)", h.run[0].Step, res.Step, h.run[1].Step)
		}
	})
	t.Run("dry run", func(t *testing.T) {
		k := newKernel(t, 0)
		h := &hooks{k: k}
		j := &journalRec{}
		res, err := Step(context.Background(), StepRequest{By: -time.Hour, DryRun: true},
			Options{Kernel: k, Hooks: h, Journal: j, CanSetTime: func() bool { return false }})
		if err != nil || res.Stepped || res.Step != -time.Hour {
			t.Fatalf("result %+v, %v", res, err)
		}
		if k.changes != 0 || len(h.run) != 0 || len(j.entries) != 0 {
			t.Errorf("a dry run changed the clock %d times, ran %d hooks, wrote %d entries", k.changes, len(h.run), len(j.entries))
		}
		if len(h.dry) != 2 || h.dry[0].Kind != stephook.PreStep || h.dry[1].Kind != stephook.PostStep ||
			len(res.Pre.Results) != 1 || res.Pre.Results[0].Outcome != stephook.DryRun || len(res.Post.Results) != 1 {
			t.Errorf("dry runs %+v, reports %+v %+v", h.dry, res.Pre, res.Post)
		}
	})

	for _, tt := range []struct {
		name     string
		opt      func(k *kernel, h *hooks, o *Options)
		wantErr  error
		wantRuns int  // hook runs
		stepped  bool // the clock moved
		journal  string
	}{
		{"no CAP_SYS_TIME: no hook runs", func(k *kernel, h *hooks, o *Options) { o.CanSetTime = func() bool { return false } },
			clock.ErrPermission, 0, false, ""},
		{"kernel refuses (EPERM)", func(k *kernel, h *hooks, o *Options) { k.eperm = true },
			clock.ErrPermission, 1, false, "need CAP_SYS_TIME"},
		{"pre-step hooks abort", func(k *kernel, h *hooks, o *Options) {
			h.reports = map[stephook.Kind]stephook.Report{stephook.PreStep: abortReport(false)}
		}, ErrAborted, 1, false, "the pre-step hooks cancelled the step: hook 0 (/hook/pre-step) failed"},
		{"post-step hook fails", func(k *kernel, h *hooks, o *Options) {
			h.reports = map[stephook.Kind]stephook.Report{stephook.PostStep: {Results: []stephook.Result{
				{Hook: "renew", Name: "dhclient[500]", Outcome: stephook.TimedOut, Err: errors.New("context deadline exceeded")}}}}
		}, ErrPostStep, 2, true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := newKernel(t, 0)
			h := &hooks{k: k}
			j := &journalRec{}
			o := Options{Kernel: k, Hooks: h, Journal: j}
			tt.opt(k, h, &o)
			res, err := Step(context.Background(), StepRequest{By: 90 * time.Second}, o)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if len(h.run) != tt.wantRuns || res.Stepped != tt.stepped || (k.Offset() == 90) != tt.stepped {
				t.Errorf("%d hook runs, stepped %v, clock offset %v s", len(h.run), res.Stepped, k.Offset())
			}
			if tt.journal != "" {
				if len(j.entries) != 1 || j.entries[0].Applied || !strings.Contains(j.entries[0].Error, tt.journal) || j.entries[0].DeltaSeconds != 90 {
					t.Errorf("journal %+v, want one refused step with %q", j.entries, tt.journal)
				}
			}
			if errors.Is(err, ErrPostStep) && !strings.Contains(err.Error(), "renew dhclient[500] timeout") {
				t.Errorf("error %q does not name the failed hook", err)
			}
		})
	}
}

func TestStepRequestErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		req  StepRequest
		want string
	}{
		{"both", StepRequest{By: time.Hour, To: epoch}, "not both"},
		{"neither", StepRequest{}, "a step by 0"},
		{"before 1970", StepRequest{To: time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)}, "before 1970"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := newKernel(t, 0)
			h := &hooks{k: k}
			_, err := Step(context.Background(), tt.req, Options{Kernel: k, Hooks: h})
			if !errors.Is(err, ErrRequest) || !strings.Contains(err.Error(), tt.want) || k.changes != 0 || len(h.run)+len(h.dry) != 0 {
				t.Errorf("error %v (want %q), %d changes, %d hook runs", err, tt.want, k.changes, len(h.run)+len(h.dry))
			}
		})
	}
	if _, err := Step(context.Background(), StepRequest{By: time.Second}, Options{}); err == nil {
		t.Error("no kernel or hooks: no error")
	}
}

// TestStepKeepsTheFrequency: the step leaves the kernel's frequency and
// tick as they were (a slew in progress of a running daemon included).
func TestStepKeepsTheFrequency(t *testing.T) {
	k := newKernel(t, 0)
	clk, err := clock.New(k)
	if err != nil {
		t.Fatal(err)
	}
	_, mono := clk.Now()
	if _, err := clk.Apply(clock.Update{FreqPPM: 12.5, Slew: time.Second, MaxRatePPM: 83333, MinDuration: time.Second}, mono); err != nil {
		t.Fatal(err)
	}
	before := k.FreqErrorPPB()
	if _, err := Step(context.Background(), StepRequest{By: time.Minute}, Options{Kernel: k, Hooks: &hooks{}}); err != nil {
		t.Fatal(err)
	}
	if after := k.FreqErrorPPB(); math.Abs(after-before) > 1e-6 {
		t.Errorf("rate %v ppb before the step, %v after", before, after)
	}
}
