package pool

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ntptool/ntptool/config"
)

const pollInterval = 64 * time.Second

// world drives a Manager as the daemon's loop would: it applies the
// actions to a set of live sources, runs the lookups at once through a
// StaticResolver, polls every source every 64 s (a reply comes back
// unless its address is dead) and reports each poll's health.
type world struct {
	t       *testing.T
	m       *Manager
	res     *StaticResolver
	now     time.Duration
	live    map[int]netip.AddrPort
	health  map[int]*Health
	dead    map[string]bool // addresses that never answer
	liars   map[string]bool // addresses the selection calls falsetickers
	lookups map[string][]time.Duration
	removed map[string]time.Duration // address → when it was removed
}

func newWorld(t *testing.T, specs []Spec) *world {
	return &world{
		t: t, m: New(specs, Options{}), res: NewStaticResolver(),
		live: map[int]netip.AddrPort{}, health: map[int]*Health{},
		dead: map[string]bool{}, liars: map[string]bool{},
		lookups: map[string][]time.Duration{}, removed: map[string]time.Duration{},
	}
}

func (w *world) apply(p Plan) {
	for _, a := range p.Actions {
		switch a.Kind {
		case Add:
			if _, dup := w.live[a.ID]; dup {
				w.t.Fatalf("id %d added twice", a.ID)
			}
			for _, addr := range w.live {
				if addr == a.Addr {
					w.t.Fatalf("%v added twice", addr)
				}
			}
			w.live[a.ID], w.health[a.ID] = a.Addr, &Health{}
		case Remove:
			if _, ok := w.live[a.ID]; !ok {
				w.t.Fatalf("id %d removed but not live", a.ID)
			}
			w.removed[a.Addr.Addr().String()] = w.now
			delete(w.live, a.ID)
			delete(w.health, a.ID)
		}
	}
	for _, lk := range p.Lookups {
		w.lookups[lk.Name] = append(w.lookups[lk.Name], w.now)
		addrs, err := w.res.LookupNetIP(context.Background(), "ip", lk.Name)
		w.apply(w.m.Resolved(Result{Key: lk.Key, Name: lk.Name, Addrs: addrs, Err: err}, w.now))
	}
}

func (w *world) poll() {
	ids := make([]int, 0, len(w.live))
	for id := range w.live {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		h, ok := w.health[id]
		if !ok {
			continue // removed by an earlier report of this round
		}
		addr := w.live[id].Addr().String()
		h.Polls++
		h.Reach <<= 1
		if !w.dead[addr] {
			h.Reach |= 1
		}
		h.Falseticker = w.liars[addr]
		w.apply(w.m.Report(id, *h, w.now))
	}
}

// run advances to end: events at their times, lookups when due, polls.
func (w *world) run(end time.Duration, events map[time.Duration]func(*world)) {
	w.apply(w.m.Start(0))
	for {
		if f := events[w.now]; f != nil {
			f(w)
		}
		if w.m.NextWakeup() <= w.now {
			w.apply(w.m.Tick(w.now))
		}
		if w.now > 0 && w.now%pollInterval == 0 {
			w.poll()
		}
		next := (w.now/pollInterval + 1) * pollInterval
		next = min(next, w.m.NextWakeup())
		for t := range events {
			if t > w.now {
				next = min(next, t)
			}
		}
		if next > end {
			return
		}
		w.now = next
	}
}

func (w *world) liveAddrs() []string {
	var out []string
	for _, a := range w.live {
		out = append(out, a.Addr().String())
	}
	slices.Sort(out)
	return out
}

func addrs(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func TestManager(t *testing.T) {
	const p = "192.0.2."
	pool4 := Spec{Name: "pool.test", Pool: true, Port: 123, MaxSources: 4}
	server := Spec{Name: "ntp.test", Port: 123, MaxSources: 1}
	eighthPoll := 8 * pollInterval
	tests := []struct {
		name        string
		specs       []Spec
		answers     map[string][]string
		dead, liars []string
		events      map[time.Duration]func(*world)
		end         time.Duration
		wantLive    []string
		wantLookups map[string][]time.Duration
		wantRemoved map[string]time.Duration
	}{{
		name:  "a pool of 6 with 2 dead: 4 live after the replacement delay, from the lookup's spares",
		specs: []Spec{pool4}, answers: map[string][]string{"pool.test": addrs(p, 1, 6)},
		dead: []string{p + "1", p + "2"}, end: 20 * time.Minute,
		wantLive:    addrs(p, 3, 6),
		wantLookups: map[string][]time.Duration{"pool.test": {0}},
		wantRemoved: map[string]time.Duration{p + "1": eighthPoll, p + "2": eighthPoll},
	}, {
		name:  "no spare: the replacement waits for the re-resolution, 30 min after the last",
		specs: []Spec{pool4}, answers: map[string][]string{"pool.test": addrs(p, 1, 4)},
		dead: []string{p + "1"}, end: 45 * time.Minute,
		events: map[time.Duration]func(*world){
			20 * time.Minute: func(w *world) { w.res.Set("pool.test", addrs(p, 5, 8)...) },
		},
		wantLive:    []string{p + "2", p + "3", p + "4", p + "5"},
		wantLookups: map[string][]time.Duration{"pool.test": {0, 30 * time.Minute}},
		wantRemoved: map[string]time.Duration{p + "1": 30 * time.Minute},
	}, {
		name:  "spares first, then one re-resolution per 30 min",
		specs: []Spec{pool4}, answers: map[string][]string{"pool.test": addrs(p, 1, 5)},
		dead: []string{p + "1", p + "2", p + "6"}, end: 70 * time.Minute,
		events: map[time.Duration]func(*world){
			time.Minute: func(w *world) { w.res.Set("pool.test", p+"6", p+"7") },
		},
		// .1 → .5 at once; .2 → .6 at 30 min (the first fresh one, dead
		// too); .6 → .7 once 8 polls have failed, from the same lookup's
		// spare, with no further lookup wanted by then.
		wantLive:    []string{p + "3", p + "4", p + "5", p + "7"},
		wantLookups: map[string][]time.Duration{"pool.test": {0, 30 * time.Minute}},
		wantRemoved: map[string]time.Duration{p + "1": eighthPoll, p + "2": 30 * time.Minute, p + "6": 30*time.Minute + 8*pollInterval - 30*time.Minute%pollInterval},
	}, {
		name:  "a server whose address stays unreachable moves to the name's new address",
		specs: []Spec{server}, answers: map[string][]string{"ntp.test": {p + "10"}},
		dead: []string{p + "10"}, end: 40 * time.Minute,
		events: map[time.Duration]func(*world){
			10 * time.Minute: func(w *world) { w.res.Set("ntp.test", p+"11") },
		},
		wantLive:    []string{p + "11"},
		wantLookups: map[string][]time.Duration{"ntp.test": {0, 30 * time.Minute}},
		wantRemoved: map[string]time.Duration{p + "10": 30 * time.Minute},
	}, {
		name:  "a server whose name still gives the dead address keeps it, re-resolved every 30 min",
		specs: []Spec{server}, answers: map[string][]string{"ntp.test": {p + "10"}},
		dead: []string{p + "10"}, end: 75 * time.Minute,
		wantLive:    []string{p + "10"},
		wantLookups: map[string][]time.Duration{"ntp.test": {0, 30 * time.Minute, 60 * time.Minute}},
	}, {
		name:  "an address literal is never resolved, dead or not",
		specs: []Spec{{Name: p + "20", Port: 123}}, dead: []string{p + "20"}, end: time.Hour,
		wantLive: []string{p + "20"}, wantLookups: map[string][]time.Duration{},
	}, {
		name:  "a name that does not resolve at boot is retried after 16, 32, 64 s",
		specs: []Spec{server}, end: 10 * time.Minute,
		events: map[time.Duration]func(*world){
			100 * time.Second: func(w *world) { w.res.Set("ntp.test", p+"10") },
		},
		wantLive:    []string{p + "10"},
		wantLookups: map[string][]time.Duration{"ntp.test": {0, 16 * time.Second, 48 * time.Second, 112 * time.Second}},
	}, {
		name:  "a persistent falseticker in a pool is replaced; a configured server's is kept",
		specs: []Spec{pool4, {Name: p + "30", Port: 123}}, answers: map[string][]string{"pool.test": addrs(p, 1, 5)},
		liars: []string{p + "1", p + "30"}, end: 20 * time.Minute,
		wantLive:    []string{p + "2", p + "3", p + "30", p + "4", p + "5"},
		wantLookups: map[string][]time.Duration{"pool.test": {0}},
		wantRemoved: map[string]time.Duration{p + "1": eighthPoll},
	}, {
		name:  "a falseticker run of 7 is not persistent",
		specs: []Spec{pool4}, answers: map[string][]string{"pool.test": addrs(p, 1, 5)},
		liars: []string{p + "1"}, end: 20 * time.Minute,
		events: map[time.Duration]func(*world){
			7*pollInterval + time.Second: func(w *world) { delete(w.liars, p+"1") },
		},
		wantLive:    addrs(p, 1, 4),
		wantLookups: map[string][]time.Duration{"pool.test": {0}},
	}, {
		name:  "a member that comes back before the re-resolution stays, and no lookup is made",
		specs: []Spec{pool4}, answers: map[string][]string{"pool.test": addrs(p, 1, 4)},
		dead: []string{p + "1"}, end: time.Hour,
		events: map[time.Duration]func(*world){
			15 * time.Minute: func(w *world) { delete(w.dead, p+"1") },
		},
		wantLive:    addrs(p, 1, 4),
		wantLookups: map[string][]time.Duration{"pool.test": {0}},
	}, {
		name:  "an outage (all dead, DNS failing): the members are kept for when it ends",
		specs: []Spec{pool4}, answers: map[string][]string{"pool.test": addrs(p, 1, 4)},
		dead: addrs(p, 1, 4), end: 65 * time.Minute,
		events: map[time.Duration]func(*world){
			time.Minute: func(w *world) { w.res.SetError("pool.test", errors.New("SERVFAIL")) },
		},
		wantLive:    addrs(p, 1, 4),
		wantLookups: map[string][]time.Duration{"pool.test": {0, 30 * time.Minute, 60 * time.Minute}},
	}, {
		name:  "a pool skips an address a server uses, and looks for more every 30 min",
		specs: []Spec{{Name: p + "3", Port: 123}, pool4}, answers: map[string][]string{"pool.test": addrs(p, 1, 4)},
		end:         40 * time.Minute,
		wantLive:    addrs(p, 1, 4),
		wantLookups: map[string][]time.Duration{"pool.test": {0, 30 * time.Minute}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.specs)
			for name, as := range tc.answers {
				w.res.Set(name, as...)
			}
			for _, a := range tc.dead {
				w.dead[a] = true
			}
			for _, a := range tc.liars {
				w.liars[a] = true
			}
			w.run(tc.end, tc.events)
			if diff := cmp.Diff(tc.wantLive, w.liveAddrs()); diff != "" {
				t.Errorf("live sources (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantLookups, w.lookups); diff != "" {
				t.Errorf("lookup times (-want +got):\n%s", diff)
			}
			if tc.wantRemoved == nil {
				tc.wantRemoved = map[string]time.Duration{}
			}
			if diff := cmp.Diff(tc.wantRemoved, w.removed); diff != "" {
				t.Errorf("removal times (-want +got):\n%s", diff)
			}
		})
	}
}

// The rate limit is visible in NextWakeup: a dead member with no spare
// asks for a lookup 30 min after the last one, not before.
func TestNextWakeup(t *testing.T) {
	r := NewStaticResolver()
	r.Set("pool.test", "192.0.2.1", "192.0.2.2")
	m := New([]Spec{{Name: "pool.test", Pool: true, Port: 123, MaxSources: 2}}, Options{})
	p := m.Start(0)
	if len(p.Lookups) != 1 || m.NextWakeup() != never {
		t.Fatalf("start: %+v, next %v", p, m.NextWakeup())
	}
	addrs, _ := r.LookupNetIP(context.Background(), "ip", "pool.test")
	p = m.Resolved(Result{Key: p.Lookups[0].Key, Addrs: addrs}, time.Second)
	if len(p.Actions) != 2 || m.NextWakeup() != never {
		t.Fatalf("resolved: %+v, next %v", p, m.NextWakeup())
	}
	id := p.Actions[0].ID
	if p := m.Report(id, Health{Reach: 0, Polls: 7}, 7*time.Minute); len(p.Actions)+len(p.Lookups) != 0 || m.NextWakeup() != never {
		t.Errorf("7 unanswered polls: %+v, next %v", p, m.NextWakeup())
	}
	if p := m.Report(id, Health{Reach: 0, Polls: 8}, 8*time.Minute); len(p.Actions)+len(p.Lookups) != 0 {
		t.Errorf("8 unanswered polls, no spare: %+v", p)
	}
	// 30 min after the last lookup began.
	if got, want := m.NextWakeup(), 30*time.Minute; got != want {
		t.Errorf("next lookup at %v, want %v", got, want)
	}
	if p := m.Tick(30*time.Minute - time.Second); len(p.Lookups) != 0 {
		t.Errorf("lookup before the rate limit: %+v", p)
	}
	if p := m.Tick(30 * time.Minute); len(p.Lookups) != 1 {
		t.Errorf("no lookup when due: %+v", p)
	}
	mem := m.Members()
	if len(mem) != 2 || !mem[0].Unreachable || mem[1].Unreachable || !mem[0].Pool {
		t.Errorf("members %+v", mem)
	}
	// Stale and unknown results are ignored.
	if p := m.Resolved(Result{Key: 999}, time.Hour); len(p.Actions)+len(p.Lookups) != 0 {
		t.Errorf("unknown key: %+v", p)
	}
	if p := m.Report(12345, Health{}, time.Hour); len(p.Actions)+len(p.Lookups) != 0 {
		t.Errorf("unknown id: %+v", p)
	}
}

func TestReconfigure(t *testing.T) {
	pool := Spec{Name: "pool.test", Pool: true, Port: 123, MaxSources: 3}
	lit := Spec{Name: "192.0.2.50", Port: 123}
	m := New([]Spec{lit, pool}, Options{})
	p := m.Start(0)
	if len(p.Actions) != 1 || p.Actions[0].Spec != 0 || len(p.Lookups) != 1 {
		t.Fatalf("start: %+v", p)
	}
	m.Resolved(Result{Key: p.Lookups[0].Key, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3"), netip.MustParseAddr("192.0.2.4")}}, time.Second)
	ids := func() []int {
		var out []int
		for _, mb := range m.Members() {
			out = append(out, mb.ID)
		}
		return out
	}
	if diff := cmp.Diff([]int{1, 2, 3, 4}, ids()); diff != "" {
		t.Fatalf("members (-want +got):\n%s", diff)
	}
	// Member 3 dies; the pool shrinks to 2, the literal goes, a server
	// name comes.
	m.Report(3, Health{Polls: 8}, time.Hour) // replaced by the spare .4 at once
	pool.MaxSources = 2
	p = m.Reconfigure([]Spec{pool, {Name: "ntp.test", Port: 123}}, time.Hour)
	var got []string
	for _, a := range p.Actions {
		got = append(got, fmt.Sprintf("%s %d spec %d %s", a.Kind, a.ID, a.Spec, a.Reason))
	}
	want := []string{
		"remove 1 spec 0 removed from the configuration", // its index when added
		"remove 5 spec 0 maxsources lowered",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if len(p.Lookups) != 1 || p.Lookups[0].Name != "ntp.test" {
		t.Errorf("lookups %+v", p.Lookups)
	}
	if diff := cmp.Diff([]Spec{pool, {Name: "ntp.test", Port: 123, MaxSources: 1}}, m.Specs()); diff != "" {
		t.Errorf("specs (-want +got):\n%s", diff)
	}
	for _, mb := range m.Members() {
		if mb.Spec != 0 {
			t.Errorf("member %+v keeps its old spec index", mb)
		}
	}
}

func TestSpecs(t *testing.T) {
	got := Specs([]config.Source{{Server: "a", Port: 123, MaxSources: 4}, {Pool: "p", Port: 10123, MaxSources: 6}, {Pool: "q", Port: 123}})
	want := []Spec{{Name: "a", Port: 123, MaxSources: 1}, {Name: "p", Pool: true, Port: 10123, MaxSources: 6}, {Name: "q", Pool: true, Port: 123, MaxSources: 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// The Lookuper runs lookups in goroutines, bounds each by its timeout,
// and leaves nothing behind on Close.
func TestLookuper(t *testing.T) {
	r := NewStaticResolver()
	r.Set("ok.test", "192.0.2.1", "2001:db8::1")
	r.Block("slow.test")
	l := NewLookuper(r, 50*time.Millisecond)
	l.Start(Lookup{Key: 1, Name: "ok.test"}, Lookup{Key: 2, Name: "slow.test"}, Lookup{Key: 3, Name: "missing.test"})
	got := map[int]Result{}
	for range 3 {
		res := <-l.Results()
		got[res.Key] = res
	}
	if a := got[1].Addrs; got[1].Err != nil || len(a) != 2 || a[1] != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("ok.test: %+v", got[1])
	}
	if err := got[2].Err; !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "slow.test") {
		t.Errorf("slow.test: %v", err)
	}
	if err := got[3].Err; !errors.Is(err, ErrNoSuchHost) {
		t.Errorf("missing.test: %v", err)
	}
	// Close with a lookup in flight and nobody reading.
	r2 := NewStaticResolver()
	r2.Block("slow.test")
	l2 := NewLookuper(r2, time.Hour)
	l2.Start(Lookup{Key: 1, Name: "slow.test"})
	l.Close()
	l2.Close()
	// A lookup goroutine past wg.Done may still be returning: give it the
	// CPU a bounded number of times.
	left := -1
	for i := 0; i < 1000 && left != 0; i++ {
		buf := make([]byte, 1<<20)
		left = strings.Count(string(buf[:runtime.Stack(buf, true)]), "pool.(*Lookuper).Start")
		runtime.Gosched()
	}
	if left != 0 {
		t.Errorf("%d lookup goroutines left after Close", left)
	}
	if r.Calls("ok.test") != 1 {
		t.Errorf("ok.test looked up %d times", r.Calls("ok.test"))
	}
}
