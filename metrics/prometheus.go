//go:build !nometrics

package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Available says whether this binary serves metrics (not built with
// -tags nometrics).
const Available = true

// ServeHolder serves NewHandler(h) on ln until ctx ends (Serve).
func ServeHolder(ctx context.Context, ln net.Listener, h *Holder, log *slog.Logger) error {
	return Serve(ctx, ln, NewHandler(h), log)
}

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
