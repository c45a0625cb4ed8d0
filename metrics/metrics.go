// Package metrics exports the daemon's state to Prometheus: a Collector
// that turns a Snapshot (the daemon's status and running totals, copied
// out of its loop) into metrics on every scrape, and an HTTP handler with
// /metrics and /healthz (200 only while synchronised, else 503), for
// [metrics] listen. Names and units follow the Prometheus conventions
// (https://prometheus.io/docs/practices/naming/): base units (seconds),
// "_total" counters; every metric is documented in docs/metrics.md.
//
// The daemon owns no metric objects: it fills a Snapshot after each update
// and hands it to a Holder, and the Collector reads the latest one when
// scraped. So the numbers in /metrics are exactly those of the status
// snapshot, with no second bookkeeping to drift apart.
//
// Built with -tags nometrics (make build-minimal) the package has no
// Prometheus, HTTP or TLS code: Available is false and ServeHolder
// refuses, which cuts the binary (and the daemon's resident memory) by
// about half for minimal images that are not scraped.
package metrics

import (
	"sync/atomic"
	"time"
)

// Snapshot is the daemon's state at one moment: what a scrape reports.
// Sign convention: OffsetSeconds > 0 means the local clock is ahead.
type Snapshot struct {
	// Time is when the daemon took the snapshot; zero leaves
	// ntptool_snapshot_timestamp_seconds out.
	Time time.Time
	// Synchronized is true once the clock is corrected from a selection
	// of sources and the kernel is told so (TIME_OK).
	Synchronized bool
	// SyncState is one of SyncStates; "" means "synchronised" or
	// "unsynchronised" as Synchronized says.
	SyncState string
	// ClockControl is false when the daemon runs without changing the
	// clock (--no-clock-control): the changes counted are what it would
	// have made.
	ClockControl bool
	// OffsetSeconds is the estimated offset of the local clock (local −
	// true; positive: ahead).
	OffsetSeconds float64
	// FrequencyPPM is the frequency correction in force (positive speeds
	// the clock up); SkewPPM its error bound.
	FrequencyPPM, SkewPPM float64
	// RootDelaySeconds, RootDispersionSeconds and RootDistanceSeconds are
	// this host's, as its NTP server would announce them.
	RootDelaySeconds, RootDispersionSeconds, RootDistanceSeconds float64
	// Stratum is this host's stratum (16 when unsynchronised).
	Stratum int
	// Leap is the NTP leap indicator: 0 none, 1 insert, 2 delete, 3
	// unsynchronised.
	Leap int
	// Sources are the sources in configuration order.
	Sources []Source
	// Totals are the running totals since start.
	Totals Totals
}

// Source states, for Source.State.
const (
	StateSelected    = "selected"     // the best of the combined ones
	StateCombined    = "combined"     // a truechimer used in the combination
	StateCandidate   = "candidate"    // a truechimer not combined
	StateFalseticker = "falseticker"  // rejected by the selection
	StateUnreachable = "unreachable"  // no valid reply in the reach register
	StateTooVariable = "too_variable" // answers, but too noisy to vote
)

// States lists the source states, in the order the metrics give them.
var States = []string{StateSelected, StateCombined, StateCandidate, StateFalseticker, StateUnreachable, StateTooVariable}

// Synchronisation states, for Snapshot.SyncState: synchronised; never
// synchronised since start; synchronised before, but no source is
// selectable now (the clock runs on the learned frequency).
const (
	SyncSynchronised   = "synchronised"
	SyncUnsynchronised = "unsynchronised"
	SyncHoldover       = "holdover"
)

// SyncStates lists the synchronisation states, in the order the metrics
// give them.
var SyncStates = []string{SyncSynchronised, SyncUnsynchronised, SyncHoldover}

// syncState is s's synchronisation state.
func (s *Snapshot) syncState() string {
	switch {
	case s.SyncState != "":
		return s.SyncState
	case s.Synchronized:
		return SyncSynchronised
	}
	return SyncUnsynchronised
}

// Source is one source's state.
type Source struct {
	// Name is the configured name (server or pool); Address the address
	// in use ("192.0.2.1:123").
	Name, Address string
	// Reach is the reach register (8 bits, newest poll in bit 0).
	Reach uint8
	// OffsetSeconds (positive: the local clock is ahead of the source),
	// DelaySeconds and JitterSeconds are the filtered estimates.
	OffsetSeconds, DelaySeconds, JitterSeconds float64
	// PollSeconds is the current poll interval.
	PollSeconds float64
	// Stratum is the source's stratum.
	Stratum int
	// State is one of States.
	State string
}

// Totals are counters since start.
type Totals struct {
	// Steps and Slews count the clock changes applied; SteppedSeconds adds
	// up the size of the steps (absolute values).
	Steps, Slews   uint64
	SteppedSeconds float64
	// HookRuns and HookFailures count by hook name.
	HookRuns, HookFailures map[string]uint64
	// AdjtimexCalls counts the kernel calls that changed the clock (what
	// an audit log of adjtimex records).
	AdjtimexCalls uint64
	// ServerRequests and ServerReplies count NTP server traffic;
	// ServerDrops counts dropped requests by reason ("ratelimit", "acl",
	// "mode6", "malformed", ...); KoDSent the kiss-o'-death replies sent.
	ServerRequests, ServerReplies uint64
	ServerDrops                   map[string]uint64
	KoDSent                       uint64
}

// Holder keeps the latest Snapshot for concurrent readers: the daemon's
// loop calls Set, scrapes and health checks call Get.
type Holder struct {
	p    atomic.Pointer[Snapshot]
	live atomic.Pointer[func(*Totals)]
}

// Set publishes s; the caller must not change it afterwards.
func (h *Holder) Set(s *Snapshot) { h.p.Store(s) }

// SetLive makes every scrape call f on a copy of the snapshot's Totals,
// for counters that change between snapshots (the NTP server's, counted
// by its own goroutines). f must be safe for concurrent use and must
// replace the maps it changes, not write into them (the snapshot shares
// them).
func (h *Holder) SetLive(f func(*Totals)) { h.live.Store(&f) }

// Get returns the latest Snapshot, or nil before the first Set.
func (h *Holder) Get() *Snapshot { return h.p.Load() }
