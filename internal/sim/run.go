package sim

import (
	"fmt"
	"io"
	"time"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/daemon"
)

// Run runs the scenario for one seed through the unchanged engine and
// returns its metrics. With trace not nil, every per-second sample is
// written to it as a line "t offset_s freq_error_ppb polls adjustments".
func (sc *Scenario) Run(seed int, trace io.Writer) (Metrics, error) {
	s, err := New(sc.config(seed))
	if err != nil {
		return Metrics{}, err
	}
	clk, err := clock.New(s.Client())
	if err != nil {
		return Metrics{}, err
	}
	e, err := daemon.New(sc.client, daemon.Options{
		Clock:     clk,
		Transport: sourceTransport{s, sc.sourceServer},
		Drift:     sc.drift,
		Wander:    sc.Clock.Wander,
	})
	if err != nil {
		return Metrics{}, err
	}
	serverSource := make(map[int]int)
	for src, srv := range sc.sourceServer {
		serverSource[srv] = src
	}
	var wake *Timer
	rearm := func() {}
	rearm = func() {
		if wake != nil {
			wake.Stop()
		}
		wake = s.AtMonotonic(e.NextWakeup(), func() { e.Wakeup(); rearm() })
	}
	s.SetReceiver(func(server int, pkt []byte, rx time.Time, rxMono time.Duration) {
		if src, ok := serverSource[server]; ok {
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
	return s.Metrics(), nil
}

// sourceTransport sends a client source's requests to its server.
type sourceTransport struct {
	s            *Sim
	sourceServer []int
}

func (t sourceTransport) Send(source int, pkt []byte) error {
	return t.s.Send(t.sourceServer[source], pkt)
}
