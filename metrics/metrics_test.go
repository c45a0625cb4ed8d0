package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func sampleSnapshot() *Snapshot {
	return &Snapshot{
		Time:         time.Date(2026, 11, 25, 10, 0, 0, 500e6, time.UTC),
		Synchronized: true, ClockControl: true, OffsetSeconds: -0.000123, FrequencyPPM: 12.5, SkewPPM: 0.02,
		RootDelaySeconds: 0.0304, RootDispersionSeconds: 0.0011, RootDistanceSeconds: 0.0163,
		Stratum: 3, Leap: 1,
		Sources: []Source{
			{Name: "a.example", Address: "192.0.2.1:123", Reach: 0xff, OffsetSeconds: -0.0001, DelaySeconds: 0.02, JitterSeconds: 0.00005, PollSeconds: 64, Stratum: 2, State: StateSelected},
			{Name: "pool.example", Address: "192.0.2.7:123", Reach: 0x7f, OffsetSeconds: 0.0004, DelaySeconds: 0.03, JitterSeconds: 0.0002, PollSeconds: 128, Stratum: 2, State: StateCombined},
			{Name: "pool.example", Address: "[2001:db8::1]:123", Reach: 0x0f, OffsetSeconds: 0.2, DelaySeconds: 0.05, JitterSeconds: 0.01, PollSeconds: 64, Stratum: 1, State: StateFalseticker},
			{Name: "b.example", Address: "198.51.100.1:123", PollSeconds: 16, Stratum: 16, State: StateUnreachable},
			{Name: "c.example", Address: "198.51.100.2:123", Reach: 0x03, PollSeconds: 16, Stratum: 2, State: StateTooVariable},
		},
		Totals: Totals{
			Steps: 1, Slews: 42, SteppedSeconds: 1.5,
			HookRuns: map[string]uint64{"dhclient": 1, "/usr/local/bin/notify": 2}, HookFailures: map[string]uint64{"/usr/local/bin/notify": 1},
			AdjtimexCalls: 85, ServerRequests: 1000, ServerReplies: 990,
			ServerDrops: map[string]uint64{"ratelimit": 7, "mode6": 3}, KoDSent: 2,
		},
	}
}

// series is one sample: its metric name and labels, and its value.
type series struct {
	name   string
	labels string
	typ    dto.MetricType
	value  float64
}

// want lists every ntptool_ series sampleSnapshot must give.
func want(s *Snapshot) []series {
	g, c := dto.MetricType_GAUGE, dto.MetricType_COUNTER
	out := []series{
		{"ntptool_snapshot_timestamp_seconds", "", g, 1795600800.5},
		{"ntptool_sync_state", `state="synchronised"`, g, 1},
		{"ntptool_sync_state", `state="unsynchronised"`, g, 0},
		{"ntptool_sync_state", `state="holdover"`, g, 0},
		{"ntptool_clock_control", "", g, 1},
		{"ntptool_synchronized", "", g, 1},
		{"ntptool_offset_seconds", "", g, s.OffsetSeconds},
		{"ntptool_frequency_ppm", "", g, s.FrequencyPPM},
		{"ntptool_skew_ppm", "", g, s.SkewPPM},
		{"ntptool_root_delay_seconds", "", g, s.RootDelaySeconds},
		{"ntptool_root_dispersion_seconds", "", g, s.RootDispersionSeconds},
		{"ntptool_root_distance_seconds", "", g, s.RootDistanceSeconds},
		{"ntptool_stratum", "", g, float64(s.Stratum)},
		{"ntptool_leap_indicator", "", g, float64(s.Leap)},
		{"ntptool_clock_steps_total", "", c, float64(s.Totals.Steps)},
		{"ntptool_clock_slews_total", "", c, float64(s.Totals.Slews)},
		{"ntptool_clock_stepped_seconds_total", "", c, s.Totals.SteppedSeconds},
		{"ntptool_adjtimex_calls_total", "", c, float64(s.Totals.AdjtimexCalls)},
		{"ntptool_server_requests_total", "", c, float64(s.Totals.ServerRequests)},
		{"ntptool_server_replies_total", "", c, float64(s.Totals.ServerReplies)},
		{"ntptool_server_kod_sent_total", "", c, float64(s.Totals.KoDSent)},
	}
	for _, src := range s.Sources {
		l := `address="` + src.Address + `",name="` + src.Name + `"`
		out = append(out,
			series{"ntptool_source_reach", l, g, float64(src.Reach)},
			series{"ntptool_source_offset_seconds", l, g, src.OffsetSeconds},
			series{"ntptool_source_delay_seconds", l, g, src.DelaySeconds},
			series{"ntptool_source_jitter_seconds", l, g, src.JitterSeconds},
			series{"ntptool_source_poll_seconds", l, g, src.PollSeconds},
			series{"ntptool_source_stratum", l, g, float64(src.Stratum)},
		)
		for _, st := range States {
			v := 0.0
			if st == src.State {
				v = 1
			}
			out = append(out, series{"ntptool_source_state", l + `,state="` + st + `"`, g, v})
		}
	}
	for _, k := range sortedKeys(s.Totals.HookRuns, s.Totals.HookFailures) {
		out = append(out,
			series{"ntptool_hook_runs_total", `hook="` + k + `"`, c, float64(s.Totals.HookRuns[k])},
			series{"ntptool_hook_failures_total", `hook="` + k + `"`, c, float64(s.Totals.HookFailures[k])})
	}
	for k, v := range s.Totals.ServerDrops {
		out = append(out, series{"ntptool_server_drops_total", `reason="` + k + `"`, c, float64(v)})
	}
	sortSeries(out)
	return out
}

func sortSeries(s []series) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].name != s[j].name {
			return s[i].name < s[j].name
		}
		return s[i].labels < s[j].labels
	})
}

// scrape fetches /metrics and parses it with the Prometheus text parser,
// returning the ntptool_ series.
func scrape(t *testing.T, base string) []series {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	var out []series
	for name, mf := range families {
		if !strings.HasPrefix(name, "ntptool_") {
			continue
		}
		if mf.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
		for _, m := range mf.Metric {
			var labels []string
			for _, lp := range m.Label {
				labels = append(labels, lp.GetName()+`="`+lp.GetValue()+`"`)
			}
			sort.Strings(labels)
			v := m.GetGauge().GetValue()
			if mf.GetType() == dto.MetricType_COUNTER {
				v = m.GetCounter().GetValue()
			}
			out = append(out, series{name, strings.Join(labels, ","), mf.GetType(), v})
		}
	}
	sortSeries(out)
	return out
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestMetricsEqualSnapshot(t *testing.T) {
	var h Holder
	srv := httptest.NewServer(NewHandler(&h))
	t.Cleanup(srv.Close)

	if got := scrape(t, srv.URL); len(got) != 0 {
		t.Errorf("before the first snapshot: %d ntptool series, want none", len(got))
	}
	s := sampleSnapshot()
	h.Set(s)
	opt := cmp.AllowUnexported(series{})
	if diff := cmp.Diff(want(s), scrape(t, srv.URL), opt); diff != "" {
		t.Errorf("/metrics (-want +got)\n%s", diff)
	}
	// A duplicate source (same name and address) must not break the scrape.
	s2 := sampleSnapshot()
	s2.Sources = append(s2.Sources, s2.Sources[0])
	h.Set(s2)
	if diff := cmp.Diff(want(s), scrape(t, srv.URL), opt); diff != "" {
		t.Errorf("/metrics with a duplicate source (-want +got)\n%s", diff)
	}
}

func TestHealthz(t *testing.T) {
	var h Holder
	srv := httptest.NewServer(NewHandler(&h))
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		name     string
		snap     *Snapshot
		wantCode int
		wantBody string
	}{
		{"before the first snapshot", nil, 503, "starting\n"},
		{"not synchronised", &Snapshot{Stratum: 16, Leap: 3}, 503, "not synchronised\n"},
		{"synchronised", &Snapshot{Synchronized: true, Stratum: 2}, 200, "synchronised\n"},
		{"holdover", &Snapshot{SyncState: SyncHoldover, Stratum: 3}, 503, "holdover: no selectable source\n"},
		{"lost", &Snapshot{Stratum: 16, Leap: 3}, 503, "not synchronised\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.snap != nil {
				h.Set(tt.snap)
			}
			code, body := get(t, srv.URL+"/healthz")
			if code != tt.wantCode || body != tt.wantBody {
				t.Errorf("/healthz = %d %q, want %d %q", code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var h Holder
	h.Set(sampleSnapshot())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, NewHandler(&h), nil) }()
	if code, _ := get(t, "http://"+ln.Addr().String()+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d, want 200", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel = %v, want nil", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Error("still serving after cancel")
	}
}

// Live counters replace the snapshot's at every scrape, without writing
// into the snapshot's maps.
func TestLiveTotals(t *testing.T) {
	var h Holder
	srv := httptest.NewServer(NewHandler(&h))
	t.Cleanup(srv.Close)
	s := sampleSnapshot()
	h.Set(s)
	var n atomic.Uint64
	h.SetLive(func(t *Totals) {
		t.ServerRequests = 2000 + n.Add(1)
		t.ServerDrops = map[string]uint64{"ratelimit": 9}
	})
	for _, wantReq := range []float64{2001, 2002} {
		var req, drops float64
		for _, s := range scrape(t, srv.URL) {
			switch s.name {
			case "ntptool_server_requests_total":
				req = s.value
			case "ntptool_server_drops_total":
				drops += s.value
			}
		}
		if req != wantReq || drops != 9 {
			t.Errorf("requests %g, drops %g; want %g and 9", req, drops, wantReq)
		}
	}
	if s.Totals.ServerRequests != 1000 || s.Totals.ServerDrops["ratelimit"] != 7 {
		t.Errorf("the snapshot was changed: %+v", s.Totals)
	}
}
