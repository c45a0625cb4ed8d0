package daemon

import (
	"math"
	"time"

	"github.com/ntptool/ntptool/driftfile"
	"github.com/ntptool/ntptool/ntpclient"
)

// Status is the engine's state, for the status and sources commands and
// for tests.
type Status struct {
	// Synced is set once the clock has been corrected from a selection.
	Synced bool
	// OffsetS is the estimated offset of the clock now (local − true, s),
	// before the correction in progress, and SigmaS its standard deviation.
	OffsetS, SigmaS float64
	// FreqPPM is the frequency correction in force (without a slew).
	FreqPPM float64
	// Leap is the leap second announced to the kernel (+1, -1 or 0).
	Leap int
	// Requests sent and clock Updates made.
	Requests, Updates int
	// MeanPoll is the mean interval between requests to a source.
	MeanPoll time.Duration
	// Held says why the clock is not being corrected (panic threshold).
	Held string
	// Sources are the sources in configuration order.
	Sources []ntpclient.SourceStatus
}

// Status returns the engine's state now; it changes nothing.
func (e *Engine) Status() Status {
	st := Status{
		Synced: e.synced, FreqPPM: e.clk.FrequencyPPM(), Leap: e.leap,
		Requests: e.requests, Updates: e.updates,
	}
	if e.held != nil {
		st.Held = e.held.Error()
	}
	real, now := e.clk.Now()
	u, applied := e.u(real, now)
	var sum time.Duration
	var sx, wx float64
	for _, s := range e.sources {
		sum += s.PollSum()
		st.Sources = append(st.Sources, s.Status(u))
		if est, ok := s.Peek(u); ok {
			sx += 1 / est.VarX
			wx += est.X / est.VarX
		}
	}
	if sx > 0 {
		st.OffsetS, st.SigmaS = wx/sx+applied, math.Sqrt(1/sx)
	}
	if n := e.requests - len(e.sources); n > 0 {
		st.MeanPoll = sum / time.Duration(n)
	}
	return st
}

// Drift is the learned frequency correction, for the drift file, with
// the error bound of the best source's frequency estimate.
func (e *Engine) Drift() driftfile.Drift {
	skew := math.Inf(1)
	for _, s := range e.sources {
		skew = math.Min(skew, s.SigmaY()*1e6)
	}
	if math.IsInf(skew, 1) {
		skew = 0
	}
	return driftfile.Drift{CorrectionPPM: e.clk.FrequencyPPM(), SkewPPM: skew}
}
