package oneshot

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ntptool/ntptool/audit"
	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/discipline"
	"github.com/ntptool/ntptool/ntpclient"
	"github.com/ntptool/ntptool/stephook"
)

// defaultPolicy is [step]'s defaults: step beyond 1 s in the first 3
// updates.
var defaultPolicy = discipline.Policy{StepThreshold: time.Second, StepLimit: 3, Panic: 1000 * time.Second}

// honest are three servers with the right time.
var honest = map[string]server{"a": {}, "b": {}, "c": {}}

func servers(names ...string) []Server {
	var out []Server
	for _, n := range names {
		out = append(out, Server{Address: n})
	}
	return out
}

func with(m map[string]server, name string, s server) map[string]server {
	out := map[string]server{}
	for k, v := range m {
		out[k] = v
	}
	out[name] = s
	return out
}

// TestSync runs ntptool sync --once's logic on a simulated kernel (never
// the host's clock) against fake servers that answer as servers would
// that kernel's clock, and checks the clock's true offset afterwards.
func TestSync(t *testing.T) {
	liar := server{errS: 3600}
	for _, tt := range []struct {
		name     string
		offset   time.Duration // the clock's error at the start (+: ahead)
		servers  map[string]server
		names    []string
		policy   discipline.Policy
		pre      *stephook.Report // the pre-step hooks' report
		noClock  bool
		wantErr  error
		action   Action
		wantLeft float64 // the clock's true offset after, within 2 µs
		steps    int     // ADJ_SETOFFSET calls
		hooks    int     // real hook runs
		dry      int     // dry-run hook runs
		journal  []audit.Kind
	}{
		{name: "slew below the threshold", offset: 500 * time.Millisecond, servers: honest, names: []string{"a", "b", "c"},
			policy: defaultPolicy, action: ActionSlew, wantLeft: 0, journal: []audit.Kind{audit.KindSlew}},
		{name: "slew forward", offset: -300 * time.Millisecond, servers: honest, names: []string{"a", "b", "c"},
			policy: defaultPolicy, action: ActionSlew, wantLeft: 0, journal: []audit.Kind{audit.KindSlew}},
		{name: "step with the hooks", offset: -10 * time.Second, servers: honest, names: []string{"a", "b", "c"},
			policy: defaultPolicy, action: ActionStep, wantLeft: 0, steps: 1, hooks: 2, journal: []audit.Kind{audit.KindStep}},
		{name: "a lying minority is out-voted", offset: -10 * time.Second, servers: with(honest, "c", liar), names: []string{"a", "b", "c"},
			policy: defaultPolicy, action: ActionStep, wantLeft: 0, steps: 1, hooks: 2, journal: []audit.Kind{audit.KindStep}},
		{name: "no majority: one honest, one liar", offset: 2 * time.Second, servers: with(honest, "b", liar), names: []string{"a", "b"},
			policy: defaultPolicy, wantErr: ErrNoMajority, action: ActionNone, wantLeft: 2},
		{name: "the unanswered do not vote", offset: 2 * time.Second, names: []string{"a", "b", "c"},
			servers: with(with(honest, "b", server{fail: ntpclient.ErrTimeout}), "c", server{fail: ntpclient.ErrUnsynchronized}),
			policy:  defaultPolicy, action: ActionStep, wantLeft: 0, steps: 1, hooks: 2, journal: []audit.Kind{audit.KindStep}},
		{name: "no reply", offset: 2 * time.Second, servers: map[string]server{"a": {fail: ntpclient.ErrTimeout}}, names: []string{"a"},
			policy: defaultPolicy, wantErr: ErrNoReply, action: ActionNone, wantLeft: 2},
		{name: "steps not allowed: slewed", offset: 5 * time.Second, servers: honest, names: []string{"a", "b", "c"},
			policy: discipline.Policy{StepThreshold: time.Second, SlewOnly: true}, action: ActionSlew, wantLeft: 0, journal: []audit.Kind{audit.KindSlew}},
		{name: "step cancelled by the hooks: slewed instead", offset: 3 * time.Second, servers: honest, names: []string{"a", "b", "c"},
			policy: defaultPolicy, pre: ptr(abortReport(false)), action: ActionSlew, wantLeft: 0, hooks: 1, journal: []audit.Kind{audit.KindSlew}},
		{name: "step cancelled by the hooks: held", offset: 3 * time.Second, servers: honest, names: []string{"a", "b", "c"},
			policy: defaultPolicy, pre: ptr(abortReport(true)), wantErr: ErrHeld, action: ActionNone, wantLeft: 3, hooks: 1, journal: []audit.Kind{audit.KindStep}},
		{name: "a slew too long to wait for", offset: 30 * time.Second, servers: honest, names: []string{"a", "b", "c"},
			policy: discipline.Policy{SlewOnly: true}, wantErr: ErrSlewTooLong, action: ActionNone, wantLeft: 30},
		{name: "no clock control: a step", offset: -10 * time.Second, servers: honest, names: []string{"a", "b", "c"}, noClock: true,
			policy: defaultPolicy, action: ActionStep, wantLeft: -10, dry: 2},
		{name: "no clock control: a slew", offset: 200 * time.Millisecond, servers: honest, names: []string{"a", "b", "c"}, noClock: true,
			policy: defaultPolicy, action: ActionSlew, wantLeft: 0.2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := newKernel(t, tt.offset)
			h := &hooks{k: k, preTakes: time.Second}
			if tt.pre != nil {
				h.reports = map[stephook.Kind]stephook.Report{stephook.PreStep: *tt.pre}
			}
			j := &journalRec{}
			req := SyncRequest{Servers: servers(tt.names...), Query: querier(k, tt.servers), Policy: tt.policy,
				MaxSlewPPM: 83333, MaxWait: 2 * time.Minute, NoClockControl: tt.noClock, Reason: "ntptool sync --once"}
			res, err := Sync(context.Background(), req, Options{Kernel: k, Hooks: h, Journal: j, Wait: k.wait})
			if tt.wantErr == nil && err != nil || !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if res.Action != tt.action {
				t.Errorf("action %s, want %s", res.Action, tt.action)
			}
			if left := k.Offset(); math.Abs(left-tt.wantLeft) > 2e-6 {
				t.Errorf("the clock is %+.9f s off after, want %+.6f s", left, tt.wantLeft)
			}
			if len(k.steps) != tt.steps || len(h.run) != tt.hooks || len(h.dry) != tt.dry {
				t.Errorf("%d steps, %d hook runs, %d dry runs; want %d, %d, %d", len(k.steps), len(h.run), len(h.dry), tt.steps, tt.hooks, tt.dry)
			}
			if (tt.noClock || tt.wantErr != nil && !errors.Is(tt.wantErr, ErrHeld)) && k.changes != 0 {
				t.Errorf("%d changes to the clock, want none", k.changes)
			}
			if got := k.tick(t); got != 10000 {
				t.Errorf("tick %d µs after, want the nominal 10000: a slew must be ended", got)
			}
			var kinds []audit.Kind
			for _, e := range j.entries {
				kinds = append(kinds, e.Kind)
			}
			if !slices.Equal(kinds, tt.journal) {
				t.Errorf("journal kinds %v, want %v", kinds, tt.journal)
			}
			if tt.pre != nil && res.StepCancelled != tt.pre.Reason {
				t.Errorf("step cancelled %q, want the hooks' reason", res.StepCancelled)
			}
			if res.Action == ActionSlew && !tt.noClock && (math.Abs((res.Slewed-res.Correction).Seconds()) > 1e-6 || res.SlewDuration < time.Second) {
				t.Errorf("slewed %v of %v over %v", res.Slewed, res.Correction, res.SlewDuration)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestSyncDetails: the roles, the reason, the events and the journal's
// sources of a step decided by two of three servers.
func TestSyncDetails(t *testing.T) {
	k := newKernel(t, -10*time.Second)
	h := &hooks{k: k}
	j := &journalRec{}
	req := SyncRequest{Servers: servers("a", "b", "c"), Query: querier(k, with(honest, "b", server{errS: -3600})),
		Policy: defaultPolicy, Reason: "ntptool sync --once"}
	res, err := Sync(context.Background(), req, Options{Kernel: k, Hooks: h, Journal: j, Wait: k.wait})
	if err != nil {
		t.Fatal(err)
	}
	var roles []Role
	for _, s := range res.Sources {
		roles = append(roles, s.Role)
	}
	if diff := cmp.Diff([]Role{RoleCombined, RoleFalseticker, RoleCombined}, roles); diff != "" {
		t.Errorf("roles (-want +got)\n%s", diff)
	}
	if res.Voters != 3 || res.Survivors != 2 || math.Abs(res.Offset.Seconds()-10) > 1e-6 {
		t.Errorf("voters %d, survivors %d, offset %v", res.Voters, res.Survivors, res.Offset)
	}
	if !strings.HasPrefix(res.Reason, "ntptool sync --once: offset +10.000000 s") || !strings.HasSuffix(res.Reason, "from 2 of 3 servers") {
		t.Errorf("reason %q", res.Reason)
	}
	if h.run[0].Kind != stephook.PreStep || h.run[0].Step != res.Correction || h.run[0].Reason != res.Reason ||
		h.run[1].Kind != stephook.PostStep || h.run[1].Step != res.Correction {
		t.Errorf("events %+v", h.run)
	}
	e := j.entries[0]
	if want := []string{"a (192.0.2.1:123)", "c (192.0.2.3:123)"}; !slices.Equal(e.Sources, want) || len(e.Hooks) != 2 || !e.Applied || e.DeltaSeconds != 10 {
		t.Errorf("journal entry %+v", e)
	}
}

// TestSyncPermission: without CAP_SYS_TIME nothing is queried, no hook
// runs and the clock is untouched; without clock control it is not asked.
func TestSyncPermission(t *testing.T) {
	k := newKernel(t, 5*time.Second)
	queried := false
	q := func(ctx context.Context, names []string, opt ntpclient.ServersOptions) []ntpclient.Result {
		queried = true
		return querier(k, honest)(ctx, names, opt)
	}
	h := &hooks{k: k}
	req := SyncRequest{Servers: servers("a", "b", "c"), Query: q, Policy: defaultPolicy}
	_, err := Sync(context.Background(), req, Options{Kernel: k, Hooks: h, CanSetTime: func() bool { return false }})
	if !errors.Is(err, clock.ErrPermission) || queried || len(h.run) != 0 || k.changes != 0 {
		t.Errorf("error %v, queried %v, %d hook runs, %d changes", err, queried, len(h.run), k.changes)
	}
	req.NoClockControl = true
	if _, err := Sync(context.Background(), req, Options{Kernel: k, Hooks: h, CanSetTime: func() bool { return false }}); err != nil || !queried {
		t.Errorf("no clock control: %v, queried %v", err, queried)
	}
	// The kernel's own refusal comes back as the same error.
	k2 := newKernel(t, 10*time.Second)
	k2.eperm = true
	_, err = Sync(context.Background(), SyncRequest{Servers: servers("a"), Query: querier(k2, honest), Policy: defaultPolicy},
		Options{Kernel: k2, Hooks: &hooks{k: k2}})
	if !errors.Is(err, clock.ErrPermission) {
		t.Errorf("EPERM: %v", err)
	}
}

// TestSyncInterrupted: a signal during the slew ends it at once; the
// clock keeps what was slewed and the tick is nominal again.
func TestSyncInterrupted(t *testing.T) {
	k := newKernel(t, 900*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	waits := 0
	wait := func(ctx context.Context, d time.Duration) error {
		waits++
		k.advance(d / 2)
		cancel()
		return ctx.Err()
	}
	req := SyncRequest{Servers: servers("a", "b", "c"), Query: querier(k, honest), Policy: defaultPolicy, MaxSlewPPM: 83333}
	res, err := Sync(ctx, req, Options{Kernel: k, Hooks: &hooks{k: k}, Wait: wait})
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) || waits != 1 {
		t.Fatalf("error %v after %d waits", err, waits)
	}
	if got := k.tick(t); got != 10000 {
		t.Errorf("tick %d µs: the slew was not ended", got)
	}
	left := k.Offset()
	if left <= 0.1 || left >= 0.8 || math.Abs(res.Slewed.Seconds()+(0.9-left)) > 1e-6 {
		t.Errorf("offset left %.6f s, slewed %v: want about half of the 0.9 s slewed, and booked", left, res.Slewed)
	}
	// The clock stays where the slew left it.
	k.advance(10 * time.Second)
	if math.Abs(k.Offset()-left) > 1e-9 {
		t.Errorf("the clock moved on by %.9f s after the slew ended", k.Offset()-left)
	}
}

// TestLimit: a pool contributes at most maxsources addresses, and an
// address named twice votes once.
func TestLimit(t *testing.T) {
	a := func(last byte) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, last}), 123)
	}
	in := []ntpclient.Result{
		{Server: "pool", Address: a(1)}, {Server: "pool", Address: a(2)}, {Server: "pool", Address: a(3)},
		{Server: "s", Address: a(2)}, {Server: "t", Address: a(9)}, {Server: "bad"}, {Server: "bad2"},
	}
	got := limit(in, []Server{{Address: "pool", MaxAddrs: 2}, {Address: "s"}, {Address: "t"}, {Address: "bad"}})
	var keep []string
	for _, r := range got {
		keep = append(keep, r.Server+"/"+r.Address.String())
	}
	want := []string{"pool/192.0.2.1:123", "pool/192.0.2.2:123", "t/192.0.2.9:123", "bad/invalid AddrPort", "bad2/invalid AddrPort"}
	if diff := cmp.Diff(want, keep); diff != "" {
		t.Errorf("kept (-want +got)\n%s", diff)
	}
}
