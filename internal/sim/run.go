package sim

import (
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/daemon"
)

// Run runs the scenario for one seed through the unchanged engine and
// returns its metrics. The engine is not told the clock's wander: it
// starts from its own prior, as on a real host. With trace not nil, every per-second sample is
// written to it as a line "t offset_s freq_error_ppb polls adjustments".
func (sc *Scenario) Run(seed int, trace io.Writer) (Metrics, error) {
	m, _, err := sc.RunStatus(seed, trace)
	return m, err
}

// RunStatus is Run that also returns the engine's status at the end.
func (sc *Scenario) RunStatus(seed int, trace io.Writer) (Metrics, daemon.Status, error) {
	return sc.run(seed, trace, nil)
}

// run runs one seed; inspect, when not nil, sees the simulation at the end.
func (sc *Scenario) run(seed int, trace io.Writer, inspect func(*Sim)) (Metrics, daemon.Status, error) {
	s, err := New(sc.config(seed))
	if err != nil {
		return Metrics{}, daemon.Status{}, err
	}
	var kernel clock.Kernel = s.Client()
	// deadline maps the engine's monotonic deadlines to the simulated
	// client's monotonic clock, and stamp the client's receive timestamps
	// to the engine's clock.
	deadline := func(m time.Duration) time.Duration { return m }
	stamp := func(rt time.Time, mono time.Duration) (time.Time, time.Duration) { return rt, mono }
	if !sc.client.Clock.Control {
		// clock.control = false: the engine runs on a virtual clock and
		// the simulated one is never adjusted, as on a real host.
		null := clock.NewNull(s.Client())
		kernel, deadline, stamp = null, null.BaseMonotonic, null.Virtual
	}
	if sc.WrapKernel != nil {
		kernel = sc.WrapKernel(kernel)
	}
	clk, err := clock.New(kernel)
	if err != nil {
		return Metrics{}, daemon.Status{}, err
	}
	var e *daemon.Engine
	rearm := func() {}
	// The pre-step hooks take sc.Hooks.Seconds; then the step is
	// committed, or, when they fail and the client's policy cancels the
	// step, cancelled: with "abort" (or its old name "slew") the engine
	// slews instead, with "hold" it leaves the clock alone. ("auto" aborts
	// only for a failed renewal of a wall-clock DHCP client, which is not
	// simulated: the step is made.)
	propose := func(daemon.StepProposal) {
		s.At(s.Now()+durationS(sc.Hooks.Seconds), func() {
			policy := sc.client.Hooks.OnFailure
			if sc.Hooks.Fail && (policy == "abort" || policy == "slew" || policy == "hold") {
				e.CancelStep(errors.New("a pre-step hook failed (simulated)"), policy == "hold")
			} else {
				before := s.Client().Offset()
				if res, err := e.CommitStep(); err == nil && sc.OnCommit != nil {
					sc.OnCommit(res, before)
				}
			}
			rearm()
		})
	}
	e, err = daemon.New(sc.client, daemon.Options{
		Clock:          clk,
		Transport:      sourceTransport{s, sc.sourceServer},
		Drift:          sc.drift,
		SaveDrift:      sc.SaveDrift,
		OnStepProposal: propose,
		Logger:         sc.Logger,
		OnClockChange:  sc.OnClockChange,
	})
	if err != nil {
		return Metrics{}, daemon.Status{}, err
	}
	for _, ev := range sc.Events {
		srv := ev.Server - 1
		s.At(durationS(ev.At), func() {
			switch {
			case ev.Offset != nil:
				s.SetServerOffset(srv, durationS(*ev.Offset))
			default:
				s.SetServerDown(srv, ev.Down)
			}
		})
	}
	s.SetEstimator(e.Estimate)
	serverSource := make(map[int]int)
	for src, srv := range sc.sourceServer {
		serverSource[srv] = src
	}
	var wake *Timer
	rearm = func() {
		if wake != nil {
			wake.Stop()
		}
		next := e.NextWakeup()
		if next != math.MaxInt64 {
			// Never at or before now: a converted deadline may round
			// early, and time must move for the engine to see it due.
			_, mono := s.Client().Now()
			next = max(deadline(next), mono+time.Microsecond)
		}
		wake = s.AtMonotonic(next, func() { e.Wakeup(); rearm() })
	}
	s.SetReceiver(func(server int, pkt []byte, rx time.Time, rxMono time.Duration) {
		if src, ok := serverSource[server]; ok {
			rx, rxMono = stamp(rx, rxMono)
			e.Receive(src, pkt, rx, rxMono)
			rearm()
		}
	})
	if trace != nil {
		s.OnSample(func(x Sample) {
			fmt.Fprintf(trace, "%d %.9f %.3f %d %d\n", x.T/time.Second, x.OffsetS, x.FreqErrorPPB, x.Polls, x.Adjustments)
		})
	}
	e.Start()
	rearm()
	s.RunUntil(time.Duration(sc.Duration * 1e9))
	if inspect != nil {
		inspect(s)
	}
	return s.Metrics(), e.Status(), nil
}

// sourceTransport sends a client source's requests to its server.
type sourceTransport struct {
	s            *Sim
	sourceServer []int
}

func (t sourceTransport) Send(source int, pkt []byte) (time.Time, time.Duration, error) {
	return time.Time{}, 0, t.s.Send(t.sourceServer[source], pkt)
}
