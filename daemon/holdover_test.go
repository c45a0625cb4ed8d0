package daemon_test

import (
	"bytes"
	"errors"
	"math"
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

// When every source falls silent no reply comes to run the selection:
// the engine must still notice, at the poll that leaves no source voting,
// that it is in holdover on the learned frequency, with the sources
// unreachable (a bug left it "synchronised" with a selected source for
// ever).
func TestAllSourcesSilentMeansHoldover(t *testing.T) {
	base := &fakeBase{real: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), mono: time.Hour}
	null := clock.NewNull(base)
	clk, err := clock.New(null)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	for _, name := range []string{"a", "b", "c"} {
		cfg.Sources = append(cfg.Sources, config.Source{Server: name, Port: 123, IBurst: true, MinPoll: 1, MaxPoll: 1, MaxSources: 1})
	}
	tr := &capture{}
	eng, err := daemon.New(&cfg, daemon.Options{Clock: clk, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	eng.Start()
	state := ntpserve.State{Stratum: 1, RefID: 0x54455354, Precision: -20}
	answering := true
	// run advances the clocks to each wake-up for d (simulated), answering
	// each request 100 µs later while answering is set.
	run := func(d time.Duration) {
		end := base.mono + d
		for base.mono < end {
			// At least 1 ms a turn: a deadline converted back and forth
			// may fall a nanosecond short, and the loop must end.
			next := eng.NextWakeup()
			if next == math.MaxInt64 {
				t.Fatal("no wake-up planned")
			}
			base.advance(max(null.BaseMonotonic(next)-base.mono, time.Millisecond))
			eng.Wakeup()
			reqs := tr.sent
			tr.sent = nil
			for _, r := range reqs {
				if !answering {
					continue
				}
				base.advance(50 * time.Microsecond)
				ts := ntpwire.FromTime(base.real)
				out := make([]byte, 48)
				n, _ := ntpserve.Respond(out, r.pkt, ts, ts, &state)
				base.advance(50 * time.Microsecond)
				rx, rxMono := null.Virtual(base.Now())
				eng.Receive(r.id, out[:n], rx, rxMono)
			}
		}
	}
	run(30 * time.Second)
	st := eng.Status()
	if st.State != daemon.Synchronised || st.SelectedID < 0 {
		t.Fatalf("after 30 s answered: state %v, selected %d; want synchronised", st.State, st.SelectedID)
	}
	freq := st.FreqPPM
	answering = false
	run(40 * time.Second) // 20 polls: 8 make a source unreachable
	st = eng.Status()
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
