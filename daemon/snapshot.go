package daemon

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/control"
	"github.com/ntptool/ntptool/ntpserve"
)

// rebuildAfter is how old a snapshot a read may get when nothing changed
// since it was built: its ages and its predicted offset move on.
const rebuildAfter = 100 * time.Millisecond

// snapshots is what the control socket reads. The loop builds a snapshot
// when one is read, not after every event: with neither the embedded
// server nor the metrics endpoint, which follow every update, a poll
// round's snapshots were a fifth of the daemon's CPU time and most of
// its garbage, and nobody read them. A read waits for the loop (which
// never blocks for long) but never holds it: the reply channel is
// buffered, and reads that come faster than rebuildAfter share one
// snapshot.
type snapshots struct {
	ask  chan<- chan *control.Snapshot
	done <-chan struct{} // the daemon is stopping: the last one built
	last *control.Publisher
}

// Load asks the loop for the current snapshot and waits for it.
func (s snapshots) Load() *control.Snapshot {
	reply := make(chan *control.Snapshot, 1)
	select {
	case s.ask <- reply:
		return <-reply // the loop answers every request it takes
	case <-s.done:
		return s.last.Load()
	}
}

// current is the snapshot of the state now, for the loop: built again if
// anything changed since the last one or that is older than
// rebuildAfter.
func (h *host) current() *control.Snapshot {
	if snap := h.pub.Load(); snap == nil || h.changed || hostMono()-h.builtAt >= rebuildAfter {
		h.publish()
	}
	return h.pub.Load()
}

// publish makes the state visible outside the loop: an immutable snapshot
// for the control socket, the same values for the metrics, and the
// embedded server's state.
func (h *host) publish() {
	h.changed, h.builtAt = false, hostMono()
	st := h.eng.Status()
	up := h.upstream(st)
	served := ntpserve.UpstreamState(up)
	h.served.Store(served)
	real, _ := h.clk.Now()
	snap := h.snapshot(st, up, served, real)
	h.pub.Publish(snap)
	if h.metricsOn {
		h.metrics.Set(metricsSnapshot(snap, h.totals, uint64(st.Adjustments+h.restores)))
	}
}

// selected returns the selected source's status and pool member.
func (h *host) selected(st Status) (SourceStatus, bool) {
	for _, s := range st.Sources {
		if s.ID == st.SelectedID {
			return s, true
		}
	}
	return SourceStatus{}, false
}

// upstream is what the embedded server needs of the daemon's state: the
// selected source, accumulated delay and dispersion, the leap second.
// Holdover still serves as synchronised: the dispersion, growing from the
// last update, tells clients how far to trust it.
func (h *host) upstream(st Status) ntpserve.Upstream {
	up := ntpserve.Upstream{LocalStratum: h.cfg.Server.LocalStratum, Precision: h.prec, Leap: st.Leap, RefTime: st.RefTime}
	sel, ok := h.selected(st)
	if !ok || st.State == Unsynchronised {
		return up
	}
	up.Synchronized = true
	up.Source = h.members[sel.ID].Addr.Addr()
	up.SourceStratum = sel.Stratum
	up.SourceRootDelay = clock.Seconds(sel.RootDelayS)
	up.SourceRootDispersion = clock.Seconds(sel.RootDispersionS)
	up.Delay = clock.Seconds(sel.LastDelayS)
	up.Dispersion = clock.Seconds(math.Abs(st.LastOffsetS) + st.SigmaS + sel.JitterS)
	return up
}

// snapshot maps the engine's status to the control socket's schema.
func (h *host) snapshot(st Status, up ntpserve.Upstream, served ntpserve.State, now time.Time) *control.Snapshot {
	s := control.Status{
		SyncState:               syncState(st.State),
		ClockControl:            h.control,
		Stratum:                 int(served.Stratum),
		RefTime:                 st.RefTime,
		SystemTimeOffsetSeconds: finite(st.OffsetS),
		LastOffsetSeconds:       finite(st.LastOffsetS),
		RMSOffsetSeconds:        finite(st.RMSOffsetS),
		FrequencyPPM:            finite(st.FreqPPM),
		ResidualFrequencyPPM:    finite(st.FreqErrorPPM),
		SkewPPM:                 finite(st.SkewPPM),
		RootDelaySeconds:        served.RootDelay.Seconds(),
		RootDispersionSeconds:   served.RootDispersion.Seconds(),
		UpdateIntervalSeconds:   st.UpdateInterval.Seconds(),
		Leap:                    control.LeapNormal,
		LastError:               firstOf(st.LastError, st.Held, st.StepCancelled, st.NoSelection),
		NextPollSeconds:         max(st.NextPoll-st.Monotonic, 0).Seconds(),
	}
	if st.State == Unsynchronised {
		s.Stratum, s.Leap = int(ntpserve.MaxStratum), control.LeapUnsynchronised
	} else if sel, ok := h.selected(st); ok && up.Synchronized {
		m := h.members[sel.ID]
		s.ReferenceID = fmt.Sprintf("%08X", ntpserve.RefIDFor(m.Addr.Addr()))
		s.ReferenceName, s.ReferenceAddress = m.Name, m.Addr.String()
		switch st.Leap {
		case 1:
			s.Leap = control.LeapInsert
		case -1:
			s.Leap = control.LeapDelete
		}
	}
	snap := &control.Snapshot{Schema: control.SchemaVersion, Time: now.UTC(), Status: s}
	for _, ss := range st.Sources {
		m := h.members[ss.ID]
		src := control.Source{
			State: sourceState(ss), Name: ss.Name, Address: m.Addr.String(), Pool: m.Pool,
			Stratum: ss.Stratum, Reach: int(ss.Reach), ReachOctal: strconv.FormatUint(uint64(ss.Reach), 8), PollLog2: ss.PollLog2,
		}
		src.Tally = control.Tally(src.State)
		if ss.LastAge > 0 {
			src.LastSample = &control.Sample{
				AgeSeconds: ss.LastAge.Seconds(), OffsetSeconds: finite(ss.OffsetS), MeasuredOffsetSeconds: finite(ss.LastOffsetS),
				ErrorSeconds: finite(ss.SigmaS), DelaySeconds: finite(ss.LastDelayS), JitterSeconds: finite(ss.JitterS),
			}
		}
		snap.Sources = append(snap.Sources, src)
	}
	// Configuration order, pool members after their pool.
	order := func(i int) (int, int) { m := h.members[st.Sources[i].ID]; return m.Spec, m.ID }
	idx := make([]int, len(snap.Sources))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		sa, ia := order(a)
		sb, ib := order(b)
		return cmp.Or(cmp.Compare(sa, sb), cmp.Compare(ia, ib))
	})
	sorted := make([]control.Source, len(idx))
	for i, j := range idx {
		sorted[i] = snap.Sources[j]
	}
	snap.Sources = sorted
	return snap
}

// syncState maps the engine's state to the control socket's words.
func syncState(s State) string {
	switch s {
	case Synchronised:
		return control.StateSynchronised
	case Holdover:
		return control.StateHoldover
	}
	return control.StateUnsynchronised
}

// sourceState maps a source's role to the control socket's words.
func sourceState(s SourceStatus) string {
	switch s.Role {
	case RoleSelected:
		return control.SourceSelected
	case RoleCombined:
		return control.SourceCombined
	case RoleNotCombined:
		return control.SourceNotCombined
	case RoleFalseticker:
		return control.SourceFalseticker
	case RoleNone:
		if s.Reach != 0 && s.LastAge > 0 {
			return control.SourceTooVariable // answers, but does not vote
		}
	}
	return control.SourceUnreachable
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// finite maps NaN and infinities to 0: the control socket's JSON cannot
// carry them.
func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}
