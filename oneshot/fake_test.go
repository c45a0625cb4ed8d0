package oneshot

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/audit"
	"github.com/ntptool/ntptool/internal/sim"
	"github.com/ntptool/ntptool/ntpclient"
	"github.com/ntptool/ntptool/stephook"
)

// epoch is the simulated kernel's true time at its start.
var epoch = time.Unix(sim.DefaultEpochUnix, 0).UTC()

// kernel is a simulated Linux clock (exact to the nanosecond) that counts
// the calls that change it; eperm makes it refuse them as the kernel does
// without CAP_SYS_TIME.
type kernel struct {
	*sim.Kernel
	changes int
	steps   []time.Duration
	eperm   bool
}

func newKernel(t *testing.T, offset time.Duration) *kernel {
	t.Helper()
	k, err := sim.NewKernel(sim.ClockConfig{InitialOffset: offset, MonotonicStart: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &kernel{Kernel: k}
}

func (k *kernel) Adjtimex(tx *unix.Timex) (int, error) {
	if tx.Modes != 0 {
		if k.eperm {
			return 0, syscall.EPERM
		}
		k.changes++
		if tx.Modes&unix.ADJ_SETOFFSET != 0 {
			k.steps = append(k.steps, time.Duration(tx.Time.Sec)*time.Second+time.Duration(tx.Time.Usec))
		}
	}
	return k.Kernel.Adjtimex(tx)
}

// tick reads the kernel's tick (µs).
func (k *kernel) tick(t *testing.T) int64 {
	t.Helper()
	var tx unix.Timex
	if _, err := k.Kernel.Adjtimex(&tx); err != nil {
		t.Fatal(err)
	}
	return tx.Tick
}

// advance moves true time on by d.
func (k *kernel) advance(d time.Duration) { k.AdvanceTo(k.T() + d) }

// wait is Options.Wait on the simulated clock: like a kernel timer, it
// returns when the monotonic clock (which a slew speeds up or slows down)
// has advanced by d. The rate is constant between adjtimex calls.
func (k *kernel) wait(_ context.Context, d time.Duration) error {
	rate := 1 + k.FreqErrorPPB()/1e9
	k.advance(max(time.Duration(float64(d)/rate), time.Nanosecond))
	return nil
}

// hooks is a fake Hooks: it records the events and answers with the
// reports set per kind; pre-step hooks take preTakes of simulated time.
type hooks struct {
	k        *kernel
	preTakes time.Duration
	reports  map[stephook.Kind]stephook.Report
	run, dry []stephook.Event
	clockAt  []time.Time // the clock's reading when each Run began
}

func (h *hooks) Run(_ context.Context, ev stephook.Event) stephook.Report {
	h.run = append(h.run, ev)
	if h.k != nil {
		now, _ := h.k.Now()
		h.clockAt = append(h.clockAt, now)
		if ev.Kind == stephook.PreStep {
			h.k.advance(h.preTakes)
		}
	}
	rep := h.reports[ev.Kind]
	if rep.Results == nil {
		rep.Results = []stephook.Result{{Hook: "exec", Name: "/hook/" + ev.Kind.String(), Outcome: stephook.OK, Duration: time.Second}}
	}
	rep.Event = ev
	return rep
}

func (h *hooks) DryRun(_ context.Context, ev stephook.Event) stephook.Report {
	h.dry = append(h.dry, ev)
	return stephook.Report{Event: ev, Results: []stephook.Result{{Hook: "exec", Name: "/hook/" + ev.Kind.String(), Outcome: stephook.DryRun}}}
}

// abortReport is a pre-step report whose verdict is abort.
func abortReport(hold bool) stephook.Report {
	return stephook.Report{Verdict: stephook.Abort, Hold: hold, Reason: "hook 0 (/hook/pre-step) failed: exit status 1",
		Results: []stephook.Result{{Hook: "exec", Name: "/hook/pre-step", Outcome: stephook.Failed, Err: errors.New("exit status 1")}}}
}

// journalRec is a fake Journal.
type journalRec struct{ entries []audit.Entry }

func (j *journalRec) Append(e audit.Entry) error {
	j.entries = append(j.entries, e)
	return nil
}

// server is a fake NTP server for the querier: its clock's error (s), or
// no valid reply.
type server struct {
	errS  float64
	delay time.Duration
	fail  error
}

// querier answers as the servers would this kernel's clock: offset =
// server − local.
func querier(k *kernel, servers map[string]server) Querier {
	return func(_ context.Context, names []string, _ ntpclient.ServersOptions) []ntpclient.Result {
		var out []ntpclient.Result
		for i, n := range names {
			s := servers[n]
			r := ntpclient.Result{Server: n, Address: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 123)}
			if s.fail != nil {
				r.Err = s.fail
				out = append(out, r)
				continue
			}
			delay := s.delay
			if delay == 0 {
				delay = time.Millisecond
			}
			r.Replies = 1
			r.Response = &ntpclient.Response{Stratum: 2, Delay: delay, RootDistance: delay/2 + 100*time.Microsecond,
				Offset: time.Duration((s.errS - k.Offset()) * 1e9)}
			out = append(out, r)
		}
		return out
	}
}
