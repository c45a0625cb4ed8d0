package control

import (
	"sync/atomic"
	"time"
)

// SchemaVersion is the version of the JSON schema below. It grows only
// when a key changes meaning or goes away; new keys do not change it.
const SchemaVersion = 1

// Sync states (Status.SyncState).
const (
	// StateSynchronised: the clock is disciplined from a selected source.
	StateSynchronised = "synchronised"
	// StateUnsynchronised: the clock has not been corrected from a source
	// since the daemon started.
	StateUnsynchronised = "unsynchronised"
	// StateHoldover: synchronised before, but no source is selectable
	// now: the clock runs on the learned frequency and its error bound
	// (root dispersion) grows.
	StateHoldover = "holdover"
)

// Leap states (Status.Leap).
const (
	LeapNormal         = "normal"
	LeapInsert         = "insert"
	LeapDelete         = "delete"
	LeapUnsynchronised = "unsynchronised"
)

// Source states (Source.State) and their tally characters (Source.Tally),
// as chronyc sources and ntpq -p show them.
const (
	SourceSelected    = "selected"     // '*' the reference: the best of the combined
	SourceCombined    = "combined"     // '+' a truechimer combined with the reference
	SourceNotCombined = "not_combined" // '-' a truechimer left out of the combination
	SourceFalseticker = "falseticker"  // 'x' outside the majority's intersection
	SourceUnreachable = "unreachable"  // '?' no usable reply in the last 8 polls, or none yet
	SourceTooVariable = "too_variable" // '~' jitter or delay too large to use
)

// Tally returns the tally character of a source state ("?" for an unknown
// state).
func Tally(state string) string {
	switch state {
	case SourceSelected:
		return "*"
	case SourceCombined:
		return "+"
	case SourceNotCombined:
		return "-"
	case SourceFalseticker:
		return "x"
	case SourceTooVariable:
		return "~"
	}
	return "?"
}

// Snapshot is what the daemon's loop publishes after each change: an
// immutable value (never modified once published) that the control socket
// and metrics read concurrently. Its JSON form is a contract for scripts
// (docs/control.md): keys carry their units, and offsets follow chronyc's
// sign (local − reference: positive means this clock is ahead).
type Snapshot struct {
	// Schema is SchemaVersion.
	Schema int `json:"schema"`
	// Time is when the loop made the snapshot (realtime, UTC).
	Time time.Time `json:"time"`
	// Status is the daemon's synchronisation (chronyc tracking).
	Status Status `json:"status"`
	// Sources are the sources in configuration order, pool members after
	// their pool (chronyc sources, ntpq -p).
	Sources []Source `json:"sources"`
}

// Status is the synchronisation state of the daemon, like chronyc tracking.
type Status struct {
	// SyncState is StateSynchronised, StateUnsynchronised or StateHoldover.
	SyncState string `json:"sync_state"`
	// ClockControl is false when the daemon runs with --no-clock-control
	// (everything is computed, the clock is not changed).
	ClockControl bool `json:"clock_control"`
	// ReferenceID is the reference ID as 8 hex digits ("C0000201"), as
	// the embedded server sends it; "" while there is none.
	ReferenceID string `json:"reference_id"`
	// ReferenceName is the selected source's configured name;
	// ReferenceAddress its address ("192.0.2.1:123").
	ReferenceName    string `json:"reference_name"`
	ReferenceAddress string `json:"reference_address"`
	// Stratum is this host's stratum: the reference's + 1; 16 while
	// unsynchronised.
	Stratum int `json:"stratum"`
	// RefTime is the time of the last clock update from a source (UTC);
	// absent before the first.
	RefTime time.Time `json:"ref_time,omitzero"`
	// SystemTimeOffsetSeconds is the estimated offset of the clock now
	// (local − true; positive: the clock is ahead, chronyc's "fast of NTP
	// time"), before the correction in progress.
	SystemTimeOffsetSeconds float64 `json:"system_time_offset_seconds"`
	// LastOffsetSeconds is the offset estimated at the last clock update.
	LastOffsetSeconds float64 `json:"last_offset_seconds"`
	// RMSOffsetSeconds is the root mean square of the offsets of the
	// clock updates (a long-term average).
	RMSOffsetSeconds float64 `json:"rms_offset_seconds"`
	// FrequencyPPM is the frequency correction in force (positive speeds
	// the clock up: the clock alone is that many ppm slow).
	FrequencyPPM float64 `json:"frequency_ppm"`
	// ResidualFrequencyPPM is the frequency error still estimated against
	// the reference after the correction.
	ResidualFrequencyPPM float64 `json:"residual_frequency_ppm"`
	// SkewPPM is the error bound (1σ) of the frequency estimate.
	SkewPPM float64 `json:"skew_ppm"`
	// RootDelaySeconds and RootDispersionSeconds are the totals to the
	// primary reference, as the embedded server serves them.
	RootDelaySeconds      float64 `json:"root_delay_seconds"`
	RootDispersionSeconds float64 `json:"root_dispersion_seconds"`
	// UpdateIntervalSeconds is the mean interval between clock updates.
	UpdateIntervalSeconds float64 `json:"update_interval_seconds"`
	// Leap is LeapNormal, LeapInsert, LeapDelete or LeapUnsynchronised.
	Leap string `json:"leap"`
	// LastError is the last problem that stops or degrades
	// synchronisation (panic threshold exceeded, clock permission, no
	// source resolvable); "" when there is none.
	LastError string `json:"last_error"`
	// NextPollSeconds is how long after Time the next request goes out.
	NextPollSeconds float64 `json:"next_poll_seconds"`
}

// Source is one source's state, like a line of chronyc sources -v.
type Source struct {
	// State is one of the Source* words; Tally its character.
	State string `json:"state"`
	Tally string `json:"tally"`
	// Name is the configured server or pool name.
	Name string `json:"name"`
	// Address is the address in use ("192.0.2.1:123", "[2001:db8::1]:123");
	// "" while the name is being resolved.
	Address string `json:"address"`
	// Pool is set for a member of a pool.
	Pool bool `json:"pool"`
	// Stratum is the source's stratum in its last valid reply; 0 before.
	Stratum int `json:"stratum"`
	// Reach is the reach register (bit 0: the latest poll was answered);
	// ReachOctal is the same in octal, as chronyc and ntpq print it
	// ("377": the last 8 answered).
	Reach      int    `json:"reach"`
	ReachOctal string `json:"reach_octal"`
	// PollLog2 is the poll interval, log2 seconds (6 = 64 s).
	PollLog2 int `json:"poll_log2"`
	// LastSample is the last valid sample; absent before one.
	LastSample *Sample `json:"last_sample,omitempty"`
}

// Sample is a source's last valid sample.
type Sample struct {
	// AgeSeconds is how long before the snapshot's time it was received
	// (chronyc's LastRx).
	AgeSeconds float64 `json:"age_seconds"`
	// OffsetSeconds is the offset of the clock against the source now
	// (local − source; positive: this clock is ahead), the filter's
	// estimate with the corrections made since (chronyc's adjusted
	// offset); MeasuredOffsetSeconds is what the exchange measured.
	OffsetSeconds         float64 `json:"offset_seconds"`
	MeasuredOffsetSeconds float64 `json:"measured_offset_seconds"`
	// ErrorSeconds is the estimated error (1σ) of OffsetSeconds.
	ErrorSeconds float64 `json:"error_seconds"`
	// DelaySeconds is the round-trip delay of the exchange.
	DelaySeconds float64 `json:"delay_seconds"`
	// JitterSeconds is the source's jitter: the RMS of the differences
	// between its recent samples and its filter's predictions.
	JitterSeconds float64 `json:"jitter_seconds"`
}

// Publisher holds the latest snapshot. The loop calls Publish; readers
// call Load, concurrently, and never block the loop.
type Publisher struct {
	p atomic.Pointer[Snapshot]
}

// Publish makes s the current snapshot. The caller must not modify s (its
// Sources slice included) afterwards: readers share it.
func (p *Publisher) Publish(s *Snapshot) { p.p.Store(s) }

// Load returns the current snapshot, nil before the first Publish.
func (p *Publisher) Load() *Snapshot { return p.p.Load() }
