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
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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

const namespace = "ntptool"

var (
	sourceLabels = []string{"name", "address"}
	descs        = struct {
		snapTime, syncState, control                                             *prometheus.Desc
		synced, offset, freq, skew, rootDelay, rootDisp, rootDist, stratum, leap *prometheus.Desc
		srcReach, srcOffset, srcDelay, srcJitter, srcPoll, srcStratum, srcState  *prometheus.Desc
		steps, slews, stepped, hookRuns, hookFails, adjtimex                     *prometheus.Desc
		srvRequests, srvReplies, srvDrops, kod                                   *prometheus.Desc
	}{
		snapTime:  desc("snapshot_timestamp_seconds", "Unix time of the daemon's status snapshot these values come from (the same as ntptool status --json's time)."),
		syncState: desc("sync_state", "1 for the daemon's synchronisation state (synchronised, unsynchronised, holdover), 0 for the others.", "state"),
		control:   desc("clock_control", "1 when the daemon changes the clock, 0 with --no-clock-control (the changes counted are then those it would have made)."),
		synced:    desc("synchronized", "1 when the clock is synchronised (kernel TIME_OK), else 0."),
		offset:    desc("offset_seconds", "Estimated offset of the local clock (local - true; positive: ahead)."),
		freq:      desc("frequency_ppm", "Frequency correction applied to the clock, ppm (positive speeds it up)."),
		skew:      desc("skew_ppm", "Error bound of the frequency correction, ppm."),
		rootDelay: desc("root_delay_seconds", "Round-trip delay to the primary reference."),
		rootDisp:  desc("root_dispersion_seconds", "Dispersion accumulated up to the primary reference."),
		rootDist:  desc("root_distance_seconds", "Root distance: the bound on the clock's error (root delay/2 + root dispersion)."),
		stratum:   desc("stratum", "This host's stratum (16: unsynchronised)."),
		leap:      desc("leap_indicator", "NTP leap indicator: 0 none, 1 insert, 2 delete a second at the end of the day, 3 unsynchronised."),

		srcReach:   desc("source_reach", "Reach register of the source (8 bits, newest poll in bit 0).", sourceLabels...),
		srcOffset:  desc("source_offset_seconds", "Filtered offset of the local clock against the source (positive: local ahead).", sourceLabels...),
		srcDelay:   desc("source_delay_seconds", "Filtered round-trip delay to the source.", sourceLabels...),
		srcJitter:  desc("source_jitter_seconds", "Jitter of the source's offset samples.", sourceLabels...),
		srcPoll:    desc("source_poll_seconds", "Current poll interval of the source.", sourceLabels...),
		srcStratum: desc("source_stratum", "Stratum of the source.", sourceLabels...),
		srcState:   desc("source_state", "1 for the source's current state, 0 for the others.", append(sourceLabels, "state")...),

		steps:     desc("clock_steps_total", "Clock steps applied."),
		slews:     desc("clock_slews_total", "Clock slews started."),
		stepped:   desc("clock_stepped_seconds_total", "Sum of the sizes (absolute) of the clock steps applied."),
		hookRuns:  desc("hook_runs_total", "Hook runs, by hook.", "hook"),
		hookFails: desc("hook_failures_total", "Hook runs that failed or timed out, by hook.", "hook"),
		adjtimex:  desc("adjtimex_calls_total", "Kernel clock adjustments (adjtimex calls that changed something)."),

		srvRequests: desc("server_requests_total", "NTP requests received by the server."),
		srvReplies:  desc("server_replies_total", "NTP replies sent by the server."),
		srvDrops:    desc("server_drops_total", "NTP requests dropped by the server, by reason.", "reason"),
		kod:         desc("server_kod_sent_total", "Kiss-o'-death replies sent by the server."),
	}
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
}

// Collector is a prometheus.Collector over the latest Snapshot of a
// Holder. Before the first Snapshot it reports nothing.
type Collector struct {
	h *Holder
}

// NewCollector returns a Collector reading h.
func NewCollector(h *Holder) *Collector { return &Collector{h: h} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.h.Get()
	if s == nil {
		return
	}
	d := &descs
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, labels...)
	}
	if !s.Time.IsZero() {
		gauge(d.snapTime, float64(s.Time.UnixNano())/1e9)
	}
	state := s.syncState()
	for _, st := range SyncStates {
		gauge(d.syncState, b2f(st == state), st)
	}
	gauge(d.control, b2f(s.ClockControl))
	gauge(d.synced, b2f(s.Synchronized))
	gauge(d.offset, s.OffsetSeconds)
	gauge(d.freq, s.FrequencyPPM)
	gauge(d.skew, s.SkewPPM)
	gauge(d.rootDelay, s.RootDelaySeconds)
	gauge(d.rootDisp, s.RootDispersionSeconds)
	gauge(d.rootDist, s.RootDistanceSeconds)
	gauge(d.stratum, float64(s.Stratum))
	gauge(d.leap, float64(s.Leap))

	seen := map[[2]string]bool{}
	for _, src := range s.Sources {
		key := [2]string{src.Name, src.Address}
		if seen[key] {
			continue // a duplicate label set would fail the whole scrape
		}
		seen[key] = true
		gauge(d.srcReach, float64(src.Reach), key[:]...)
		gauge(d.srcOffset, src.OffsetSeconds, key[:]...)
		gauge(d.srcDelay, src.DelaySeconds, key[:]...)
		gauge(d.srcJitter, src.JitterSeconds, key[:]...)
		gauge(d.srcPoll, src.PollSeconds, key[:]...)
		gauge(d.srcStratum, float64(src.Stratum), key[:]...)
		for _, st := range States {
			gauge(d.srcState, b2f(src.State == st), src.Name, src.Address, st)
		}
	}

	t := s.Totals
	if live := c.h.live.Load(); live != nil {
		(*live)(&t)
	}
	counter(d.steps, float64(t.Steps))
	counter(d.slews, float64(t.Slews))
	counter(d.stepped, t.SteppedSeconds)
	for _, k := range sortedKeys(t.HookRuns, t.HookFailures) {
		counter(d.hookRuns, float64(t.HookRuns[k]), k)
		counter(d.hookFails, float64(t.HookFailures[k]), k)
	}
	counter(d.adjtimex, float64(t.AdjtimexCalls))
	counter(d.srvRequests, float64(t.ServerRequests))
	counter(d.srvReplies, float64(t.ServerReplies))
	for _, k := range sortedKeys(t.ServerDrops) {
		counter(d.srvDrops, float64(t.ServerDrops[k]), k)
	}
	counter(d.kod, float64(t.KoDSent))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// sortedKeys returns the keys of the maps, sorted, each once.
func sortedKeys(ms ...map[string]uint64) []string {
	set := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			set[k] = true
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// NewHandler serves /metrics (the Collector over h, with the Go runtime's
// and the process's standard metrics) and /healthz: 200 "synchronised"
// while the latest Snapshot says so, else 503 with the reason.
func NewHandler(h *Holder) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(h), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		s := h.Get()
		switch {
		case s == nil:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "starting")
		case !s.Synchronized && s.syncState() == SyncHoldover:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "holdover: no selectable source")
		case !s.Synchronized:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not synchronised")
		default:
			fmt.Fprintln(w, "synchronised")
		}
	})
	return mux
}

// Serve serves handler on ln until ctx ends, then shuts down (waiting up
// to 5 s for scrapes in flight). It returns nil after a shutdown.
func Serve(ctx context.Context, ln net.Listener, handler http.Handler, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		done <- srv.Shutdown(sctx)
	}()
	log.Info("metrics listening", "address", ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics server: %w", err)
	}
	return <-done
}
