package daemon_test

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/daemon"
	"github.com/ntptool/ntptool/ntpserve"
	"github.com/ntptool/ntptool/ntpwire"
)

// fakeBase is a host clock that moves only when the test says so.
type fakeBase struct {
	real time.Time
	mono time.Duration
}

func (b *fakeBase) Adjtimex(*unix.Timex) (int, error) { return 0, errors.New("read-only") }
func (b *fakeBase) Now() (time.Time, time.Duration)   { return b.real, b.mono }
func (b *fakeBase) advance(d time.Duration)           { b.real, b.mono = b.real.Add(d), b.mono+d }

// capture is a transport that keeps the requests for the test to answer.
type capture struct{ sent []request }

type request struct {
	id  int
	pkt []byte
}

func (c *capture) Send(id int, pkt []byte) (time.Time, time.Duration, error) {
	c.sent = append(c.sent, request{id, bytes.Clone(pkt)})
	return time.Time{}, 0, nil
}

// harness drives an engine over a fake host clock and transport: the
// servers answer the requests of a wake-up 100 µs later, from the host
// clock, while answering is set.
type harness struct {
	t         *testing.T
	base      *fakeBase
	null      *clock.Null
	tr        *capture
	eng       *daemon.Engine
	answering bool
	batch     bool // the replies of a wake-up in one Hold … Release
}

func newHarness(t *testing.T, names ...string) *harness {
	t.Helper()
	var srcs []config.Source
	for _, name := range names {
		srcs = append(srcs, pollFast(name))
	}
	return newHarnessOf(t, srcs...)
}

// newHarnessOf is newHarness with the sources' configurations.
func newHarnessOf(t *testing.T, srcs ...config.Source) *harness {
	t.Helper()
	h := &harness{t: t, base: &fakeBase{real: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), mono: time.Hour}, tr: &capture{}, answering: true}
	h.null = clock.NewNull(h.base)
	clk, err := clock.New(h.null)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Sources = srcs
	if h.eng, err = daemon.New(&cfg, daemon.Options{Clock: clk, Transport: h.tr}); err != nil {
		t.Fatal(err)
	}
	h.eng.Start()
	return h
}

// pollFast is a source polled every 2 s, with iburst.
func pollFast(name string) config.Source {
	return config.Source{Server: name, Port: 123, IBurst: true, MinPoll: 1, MaxPoll: 1, MaxSources: 1}
}

// run advances the clocks from wake-up to wake-up for d (simulated),
// calling each (if not nil) after every wake-up and reply.
func (h *harness) run(d time.Duration, each func()) {
	h.t.Helper()
	state := ntpserve.State{Stratum: 1, RefID: 0x54455354, Precision: -20}
	for end := h.base.mono + d; h.base.mono < end; {
		next := h.eng.NextWakeup()
		if next == math.MaxInt64 {
			h.t.Fatal("no wake-up planned")
		}
		// At least 1 ms a turn: a deadline converted back and forth may
		// fall a nanosecond short, and the loop must end.
		h.base.advance(max(h.null.BaseMonotonic(next)-h.base.mono, time.Millisecond))
		h.eng.Wakeup()
		if each != nil {
			each()
		}
		reqs := h.tr.sent
		h.tr.sent = nil
		if !h.answering || len(reqs) == 0 {
			continue
		}
		// The servers are equally far: all answer at once, and the
		// replies arrive together.
		h.base.advance(50 * time.Microsecond)
		ts := ntpwire.FromTime(h.base.real)
		h.base.advance(50 * time.Microsecond)
		rx, rxMono := h.null.Virtual(h.base.Now())
		if h.batch {
			h.eng.Hold()
		}
		for _, r := range reqs {
			out := make([]byte, 48)
			n, _ := ntpserve.Respond(out, r.pkt, ts, ts, &state)
			h.eng.Receive(r.id, out[:n], rx, rxMono)
			if each != nil && !h.batch {
				each()
			}
		}
		if h.batch {
			h.eng.Release()
			if each != nil {
				each()
			}
		}
	}
}

// When every source falls silent no reply comes to run the selection:
// the engine must still notice, at the poll that leaves no source voting,
// that it is in holdover on the learned frequency, with the sources
// unreachable (a bug left it "synchronised" with a selected source for
// ever).
func TestAllSourcesSilentMeansHoldover(t *testing.T) {
	h := newHarness(t, "a", "b", "c")
	h.run(30*time.Second, nil)
	st := h.eng.Status()
	if st.State != daemon.Synchronised || st.SelectedID < 0 {
		t.Fatalf("after 30 s answered: state %v, selected %d; want synchronised", st.State, st.SelectedID)
	}
	freq := st.FreqPPM
	h.answering = false
	h.run(40*time.Second, nil) // 20 polls: 8 make a source unreachable
	st = h.eng.Status()
	if st.State != daemon.Holdover {
		t.Errorf("40 s after the last reply: state %v, want holdover", st.State)
	}
	if st.FreqPPM != freq {
		t.Errorf("frequency %v ppm in holdover, want the learned %v ppm", st.FreqPPM, freq)
	}
	for _, s := range st.Sources {
		if s.Role != daemon.RoleUnreachable || s.Reach != 0 {
			t.Errorf("source %s: role %v, reach %o; want unreachable, 0", s.Name, s.Role, s.Reach)
		}
	}
}

// Sources added while synchronised (a pool's replacements, a reload) vote
// once they can be candidates: two new ones next to two live ones must
// not leave the live ones without a majority (a bug put the engine in
// holdover and marked the live sources falsetickers until the new ones
// had two samples each, which the pool manager counts towards replacing
// them).
func TestSourcesAddedWhileSynchronised(t *testing.T) {
	h := newHarness(t, "a", "b")
	h.run(30*time.Second, nil)
	if st := h.eng.Status(); st.State != daemon.Synchronised {
		t.Fatalf("after 30 s: state %v, want synchronised", st.State)
	}
	for i, name := range []string{"c", "d"} {
		if err := h.eng.AddSource(10+i, pollFast(name)); err != nil {
			t.Fatal(err)
		}
	}
	bad := 0
	h.run(20*time.Second, func() {
		st := h.eng.Status()
		ok := st.State == daemon.Synchronised
		for _, s := range st.Sources {
			ok = ok && s.Role != daemon.RoleFalseticker
		}
		if !ok && bad == 0 {
			t.Errorf("after adding two sources: state %v, sources %+v; want synchronised, no falseticker", st.State, st.Sources)
		}
		if !ok {
			bad++
		}
	})
	st := h.eng.Status()
	for _, s := range st.Sources {
		if s.Role != daemon.RoleSelected && s.Role != daemon.RoleCombined && s.Role != daemon.RoleNotCombined {
			t.Errorf("20 s after adding: source %s %v; want it used", s.Name, s.Role)
		}
	}
}

// Health, the pool manager's cheap view, says what Status says of each
// source's polls, reach and role, answered and silent.
func TestHealthMatchesStatus(t *testing.T) {
	h := newHarness(t, "a", "b", "c")
	checks := 0
	check := func() {
		checks++
		st := h.eng.Status()
		var want []daemon.SourceHealth
		for _, s := range st.Sources {
			want = append(want, daemon.SourceHealth{ID: s.ID, Polls: s.Polls, Reach: s.Reach, Role: s.Role})
		}
		if got := h.eng.Health(); !slices.Equal(got, want) {
			t.Fatalf("Health %+v; Status says %+v", got, want)
		}
	}
	h.run(30*time.Second, check)
	h.answering = false
	h.run(40*time.Second, nil)
	check()
	if checks < 10 {
		t.Errorf("%d checks; want one per reply", checks)
	}
}
