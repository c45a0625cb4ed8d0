package daemon

import (
	"math"
	"time"

	"github.com/ntptool/ntptool/driftfile"
)

// Role is a source's part in the last selection.
type Role int

// Roles, after chronyc's source states.
const (
	// RoleNone: not voting (not answered yet, answering unsynchronised,
	// a KoD).
	RoleNone Role = iota
	// RoleUnreachable: no usable reply for 8 polls, or a KoD DENY/RSTR.
	RoleUnreachable
	// RoleFalseticker: its interval is outside the majority's, or no
	// majority agrees.
	RoleFalseticker
	// RoleNotCombined: a truechimer the clustering left out.
	RoleNotCombined
	// RoleCombined: combined into the estimate.
	RoleCombined
	// RoleSelected: the combined source with the tightest estimate.
	RoleSelected
)

var roleNames = [...]string{"none", "unreachable", "falseticker", "not-combined", "combined", "selected"}

func (r Role) String() string { return roleNames[r] }

// Status is the engine's state, for the status and sources commands and
// for tests.
type Status struct {
	// State is the synchronisation state, and NoSelection why the last
	// selection failed (empty when it did not).
	State       State
	NoSelection string
	// Synced is set once the clock has been corrected from a selection.
	Synced bool
	// OffsetS is the estimated offset of the clock now (local − true, s),
	// from the last combination of the sources predicted to now; SigmaS
	// is its standard deviation. Both 0 before one.
	OffsetS, SigmaS float64
	// FreqPPM is the frequency correction in force (without a slew),
	// FreqErrorPPM the frequency error still estimated (> 0: the clock
	// runs fast), and SkewPPM the standard deviation of that estimate.
	FreqPPM, FreqErrorPPM, SkewPPM float64
	// DistanceS is the root distance of the last selection.
	DistanceS float64
	// Leap is the leap second the majority announces (+1, −1 or 0).
	Leap int
	// Requests sent and clock Updates made.
	Requests, Updates int
	// MeanPoll is the mean interval between requests to a source.
	MeanPoll time.Duration
	// Held says why the clock is not being corrected (panic threshold, a
	// cancelled step with hold).
	Held string
	// StepPending is set while a step proposal awaits its hooks, and
	// StepCancelled says why the last one was cancelled ("" if none was).
	StepPending   bool
	StepCancelled string
	// LastError is the last error carrying out a clock action, and Errors
	// how many there were.
	LastError string
	Errors    int
	// RefTime is when the clock was last corrected (zero before), and
	// LastOffsetS the offset that correction removed; RMSOffsetS is the
	// RMS of the recent ones, UpdateInterval the mean interval between
	// them.
	RefTime        time.Time
	LastOffsetS    float64
	RMSOffsetS     float64
	UpdateInterval time.Duration
	// SelectedID is the selected source's id, −1 if none.
	SelectedID int
	// Monotonic is the status's time, and NextPoll the monotonic time of
	// the next request.
	Monotonic, NextPoll time.Duration
	// Adjustments counts the adjtimex calls that changed the clock.
	Adjustments int
	// Sources are the sources in the order they were added.
	Sources []SourceStatus
}

// SourceStatus is one source's state.
type SourceStatus struct {
	// ID is the source's id, Name its configured name.
	ID   int
	Name string
	// Role is its part in the last selection.
	Role Role
	// Reach is the reach register: bit 0 is the latest request.
	Reach uint8
	// PollLog2 is the current poll interval, log2 seconds.
	PollLog2 int
	// Stratum is the source's stratum in its last valid reply.
	Stratum int
	// OffsetS is the estimated offset of the clock against this source
	// (local − source, s) now, and SigmaS its standard deviation; 0 before
	// a sample.
	OffsetS, SigmaS float64
	// LastOffsetS and LastDelayS are the last usable sample's offset
	// (local − source) and round-trip delay, s, and LastAge its age; 0
	// before one.
	LastOffsetS, LastDelayS float64
	LastAge                 time.Duration
	// FloorDelayS is the lowest round-trip delay seen.
	FloorDelayS float64
	// RefID, RootDelayS and RootDispersionS are from the last valid
	// reply; Leap is its leap indicator (0 none, 1 insert, 2 delete).
	RefID                       string
	RootDelayS, RootDispersionS float64
	Leap                        int
	// Polls counts the polls made to the source; JitterS is the RMS of
	// its samples' recent scatter about the predictions.
	Polls   int
	JitterS float64
}

// Status returns the engine's state now; it changes nothing.
func (e *Engine) Status() Status {
	st := Status{
		State: e.state, Synced: e.state != Unsynchronised, FreqPPM: e.clk.FrequencyPPM(), Leap: e.leap,
		Requests: e.requests, Updates: e.disc.Updates(), StepPending: e.pending != nil,
		DistanceS: e.distance, Errors: e.errCount, SelectedID: e.selected,
		RefTime: e.lastUpdate, LastOffsetS: e.lastOffset, RMSOffsetS: math.Sqrt(e.meanSqOffset),
		UpdateInterval: clockSeconds(e.meanInterval), NextPoll: e.NextWakeup(), Adjustments: e.clk.Adjustments(),
	}
	for _, err := range []struct {
		dst *string
		err error
	}{{&st.Held, e.held}, {&st.NoSelection, e.noSelect}, {&st.LastError, e.lastErr}, {&st.StepCancelled, e.cancelled}} {
		if err.err != nil {
			*err.dst = err.err.Error()
		}
	}
	real, now := e.clk.Now()
	st.Monotonic = now
	u, applied := e.u(real, now)
	var polls int
	var sum time.Duration
	st.Sources = make([]SourceStatus, 0, len(e.sources))
	for _, s := range e.sources {
		n, d := s.wire.Polls()
		polls += max(n-1, 0)
		sum += d
		ss := SourceStatus{
			ID: s.id, Name: s.wire.Name(), Role: s.role, Reach: s.wire.Reach(), PollLog2: s.wire.PollLog2(),
			FloorDelayS: s.est.FloorDelay(), LastOffsetS: s.last.OffsetS, LastDelayS: s.last.DelayS, JitterS: s.est.Jitter(),
		}
		ss.Polls = n
		if r := s.wire.Last(); r != nil {
			ss.Stratum, ss.RefID, ss.Leap = r.Stratum, r.RefID, int(r.Leap)
			ss.RootDelayS, ss.RootDispersionS = r.RootDelay.Seconds(), r.RootDispersion.Seconds()
		}
		if s.lastMono != 0 {
			ss.LastAge = now - s.lastMono
		}
		if est, ok := s.est.Peek(u); ok {
			ss.OffsetS, ss.SigmaS = est.X+applied, math.Sqrt(est.VarX)
		}
		st.Sources = append(st.Sources, ss)
	}
	if e.haveEst {
		in := e.predicted(real, now)
		st.OffsetS, st.SigmaS, st.FreqErrorPPM = in.OffsetS, in.SigmaS, in.FreqError*1e6
		st.SkewPPM = math.Sqrt(e.est.VarY) * 1e6
	}
	if polls > 0 {
		st.MeanPoll = sum / time.Duration(polls)
	}
	return st
}

// SourceHealth is what the pool manager needs of a source after its
// polls: Status's ID, Polls, Reach and Role, without the estimates.
type SourceHealth struct {
	ID, Polls int
	Reach     uint8
	Role      Role
}

// Health is every source's SourceHealth, cheaply.
func (e *Engine) Health() []SourceHealth {
	out := make([]SourceHealth, 0, len(e.sources))
	for _, s := range e.sources {
		n, _ := s.wire.Polls()
		out = append(out, SourceHealth{ID: s.id, Polls: n, Reach: s.wire.Reach(), Role: s.role})
	}
	return out
}

func clockSeconds(s float64) time.Duration { return time.Duration(s * 1e9) }

// Estimate is the estimated offset of the clock now (local − true, s) and
// its standard deviation, from the last combination predicted to now; ok
// is false before one. It is Status's OffsetS and SigmaS, cheaply.
func (e *Engine) Estimate() (offsetS, sigmaS float64, ok bool) {
	if !e.haveEst {
		return 0, 0, false
	}
	in := e.predicted(e.clk.Now())
	return in.OffsetS, in.SigmaS, true
}

// Drift is the learned frequency correction, for the drift file, with
// the error bound of the last combined frequency estimate.
func (e *Engine) Drift() driftfile.Drift {
	d := driftfile.Drift{CorrectionPPM: e.clk.FrequencyPPM()}
	if e.haveEst {
		d.SkewPPM = math.Min(math.Sqrt(e.est.VarY)*1e6, driftfile.MaxPPM)
	}
	return d
}
