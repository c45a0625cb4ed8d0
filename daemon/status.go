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
	// from the last combination of the truechimers, before the correction
	// in progress; SigmaS is its standard deviation. Both 0 before one.
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
	var polls int
	var sum time.Duration
	for _, s := range e.sources {
		n, d := s.Polls()
		polls += max(n-1, 0)
		sum += d
		st.Sources = append(st.Sources, s.Status(u, applied))
	}
	if e.truechimers > 0 {
		// The last combined estimate of the truechimers, predicted to now.
		h := u - e.estU
		st.OffsetS = e.est.X + e.est.Y*h + applied
		st.SigmaS = math.Sqrt(e.est.VarX + e.est.VarY*h*h)
	}
	if polls > 0 {
		st.MeanPoll = sum / time.Duration(polls)
	}
	return st
}

// Drift is the learned frequency correction, for the drift file, with
// the error bound of the last combined frequency estimate.
func (e *Engine) Drift() driftfile.Drift {
	d := driftfile.Drift{CorrectionPPM: e.clk.FrequencyPPM()}
	if e.truechimers > 0 {
		d.SkewPPM = math.Min(math.Sqrt(e.est.VarY)*1e6, driftfile.MaxPPM)
	}
	return d
}
