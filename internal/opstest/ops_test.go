package opstest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ntptool/ntptool/audit"
	"github.com/ntptool/ntptool/control"
	"github.com/ntptool/ntptool/internal/peers"
)

func TestMain(m *testing.M) {
	code := m.Run()
	peers.RemoveBuild()
	os.Exit(code)
}

// skipOrFail skips, or fails when NTPTOOL_REQUIRE_PEERS=1 (CI), where the
// test must run.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("NTPTOOL_REQUIRE_PEERS") == "1" {
		t.Fatalf(format+" (NTPTOOL_REQUIRE_PEERS=1: this test must run)", args...)
	}
	t.Skipf(format, args...)
}

// freeTCP returns a loopback TCP address that was free a moment ago.
func freeTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ntptool runs the binary with args and returns its exit code and output.
func ntptool(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// sample is one series of /metrics: its name and sorted labels.
type sample struct{ name, labels string }

// scrape parses /metrics with the Prometheus text parser.
func scrape(t *testing.T, base string) map[sample]float64 {
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
		t.Fatalf("/metrics does not parse: %v", err)
	}
	out := map[sample]float64{}
	for name, mf := range families {
		for _, m := range mf.Metric {
			var labels []string
			for _, lp := range m.Label {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			sort.Strings(labels)
			v := m.GetGauge().GetValue()
			if mf.GetType() == dto.MetricType_COUNTER {
				v = m.GetCounter().GetValue()
			}
			out[sample{name, strings.Join(labels, ",")}] = v
		}
	}
	return out
}

// query asks the daemon through the ntptool command, as a script would.
func query(t *testing.T, bin, sock, command string) control.Reply {
	t.Helper()
	code, out, errOut := ntptool(t, bin, command, "--json", "--socket", sock)
	if code != 0 {
		t.Fatalf("ntptool %s --json: exit %d: %s", command, code, errOut)
	}
	var r control.Reply
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("ntptool %s --json: %v\n%s", command, err, out)
	}
	return r
}

// Metrics acceptance: the daemon without clock control against a loopback
// server that does not answer yet: /healthz says 503; once it answers, 200;
// /metrics parses with the Prometheus parser, and every value it shares
// with ntptool status --json and sources --json (same snapshot time) is
// equal to it.
func TestMetricsEqualStatus(t *testing.T) {
	bin := peers.BuildNtptool(t)
	dir := t.TempDir()
	srv := NewServer(t, 0, false)
	addr := freeTCP(t)
	cfg := Config(t, dir, srv, fmt.Sprintf("[metrics]\nlisten = %q\n", addr))
	d := StartDaemon(t, bin, cfg)
	base := "http://" + addr

	var code int
	var body string
	d.Until(t, 10*time.Second, "/healthz answers", func() bool {
		var err error
		code, body, err = get(base + "/healthz")
		return err == nil && body != "starting\n"
	})
	if code != http.StatusServiceUnavailable || body != "not synchronised\n" {
		t.Errorf("/healthz before any reply = %d %q, want 503 not synchronised", code, body)
	}
	m := scrape(t, base)
	if m[sample{"ntptool_synchronized", ""}] != 0 || m[sample{"ntptool_stratum", ""}] != 16 || m[sample{"ntptool_sync_state", "state=unsynchronised"}] != 1 {
		t.Errorf("before any reply: synchronized %v, stratum %v", m[sample{"ntptool_synchronized", ""}], m[sample{"ntptool_stratum", ""}])
	}
	srv.SetAnswering(true)
	answered := time.Now()
	d.Until(t, 20*time.Second, "/healthz says 200", func() bool {
		code, body, _ = get(base + "/healthz")
		return code == http.StatusOK
	})
	if body != "synchronised\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	t.Logf("/healthz 503 → 200 %.3f s after the server started answering", time.Since(answered).Seconds())
	// Let a few updates happen, so that the counters count.
	d.Until(t, 20*time.Second, "3 slews", func() bool { return scrape(t, base)[sample{"ntptool_clock_slews_total", ""}] >= 3 })

	sock := filepath.Join(dir, "run", "control.sock")
	var st, srcs control.Reply
	var m1, m2 map[sample]float64
	same := false
	for try := 0; try < 20 && !same; try++ {
		m1 = scrape(t, base)
		st = query(t, bin, sock, "status")
		srcs = query(t, bin, sock, "sources")
		m2 = scrape(t, base)
		snapTime := m1[sample{"ntptool_snapshot_timestamp_seconds", ""}]
		same = snapTime == m2[sample{"ntptool_snapshot_timestamp_seconds", ""}] && st.Time.Equal(srcs.Time) &&
			math.Abs(float64(st.Time.UnixNano())/1e9-snapTime) < 1e-6
	}
	if !same {
		t.Fatal("no scrape and status from the same snapshot in 20 tries")
	}
	s := st.Status
	state := func(n string) float64 { return map[bool]float64{true: 1, false: 0}[s.SyncState == n] }
	leap := map[string]float64{control.LeapNormal: 0, control.LeapInsert: 1, control.LeapDelete: 2, control.LeapUnsynchronised: 3}[s.Leap]
	want := map[sample]float64{
		{"ntptool_offset_seconds", ""}:                 s.SystemTimeOffsetSeconds,
		{"ntptool_frequency_ppm", ""}:                  s.FrequencyPPM,
		{"ntptool_skew_ppm", ""}:                       s.SkewPPM,
		{"ntptool_root_delay_seconds", ""}:             s.RootDelaySeconds,
		{"ntptool_root_dispersion_seconds", ""}:        s.RootDispersionSeconds,
		{"ntptool_root_distance_seconds", ""}:          s.RootDelaySeconds/2 + s.RootDispersionSeconds,
		{"ntptool_stratum", ""}:                        float64(s.Stratum),
		{"ntptool_leap_indicator", ""}:                 leap,
		{"ntptool_synchronized", ""}:                   state(control.StateSynchronised),
		{"ntptool_sync_state", "state=synchronised"}:   state(control.StateSynchronised),
		{"ntptool_sync_state", "state=unsynchronised"}: state(control.StateUnsynchronised),
		{"ntptool_sync_state", "state=holdover"}:       state(control.StateHoldover),
		{"ntptool_clock_control", ""}:                  0,
		{"ntptool_clock_steps_total", ""}:              0,
		{"ntptool_clock_stepped_seconds_total", ""}:    0,
		{"ntptool_server_requests_total", ""}:          0,
	}
	if len(srcs.Sources) != 1 {
		t.Fatalf("sources %+v, want 1", srcs.Sources)
	}
	for _, src := range srcs.Sources {
		l := "address=" + src.Address + ",name=" + src.Name
		ls := src.LastSample
		if ls == nil {
			t.Fatalf("source %s without a sample", src.Address)
		}
		want[sample{"ntptool_source_reach", l}] = float64(src.Reach)
		want[sample{"ntptool_source_offset_seconds", l}] = ls.OffsetSeconds
		want[sample{"ntptool_source_delay_seconds", l}] = ls.DelaySeconds
		want[sample{"ntptool_source_jitter_seconds", l}] = ls.JitterSeconds
		want[sample{"ntptool_source_poll_seconds", l}] = math.Ldexp(1, src.PollLog2)
		want[sample{"ntptool_source_stratum", l}] = float64(src.Stratum)
		metricState := map[string]string{control.SourceNotCombined: "candidate"}[src.State]
		if metricState == "" {
			metricState = src.State
		}
		for _, ms := range []string{"selected", "combined", "candidate", "falseticker", "unreachable", "too_variable"} {
			want[sample{"ntptool_source_state", l + ",state=" + ms}] = map[bool]float64{true: 1, false: 0}[ms == metricState]
		}
	}
	var diffs []string
	for k, v := range want {
		got, ok := m1[k]
		if !ok || got != v {
			diffs = append(diffs, fmt.Sprintf("%s{%s} = %v (present %v), status says %v", k.name, k.labels, got, ok, v))
		}
	}
	slices.Sort(diffs)
	for _, d := range diffs {
		t.Error(d)
	}
	if s.SyncState != control.StateSynchronised || m1[sample{"ntptool_adjtimex_calls_total", ""}] < 3 || m1[sample{"ntptool_clock_slews_total", ""}] < 3 {
		t.Errorf("sync %s, adjtimex %v, slews %v: want synchronised and counting", s.SyncState,
			m1[sample{"ntptool_adjtimex_calls_total", ""}], m1[sample{"ntptool_clock_slews_total", ""}])
	}
	t.Logf("%d values compared at snapshot %v: offset %+.3e s, frequency %+.4f ppm, %v adjtimex calls (virtual), %v slews",
		len(want), st.Time, s.SystemTimeOffsetSeconds, s.FrequencyPPM, m1[sample{"ntptool_adjtimex_calls_total", ""}], m1[sample{"ntptool_clock_slews_total", ""}])
	if err := d.Stop(t, 10*time.Second); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

// systemd acceptance, with a test NOTIFY_SOCKET and a 1 s watchdog: no
// READY=1 while the server does not answer; READY=1 with a STATUS= line
// once the clock was updated; further STATUS= lines rate-limited (10 s
// apart for the same state and source, not one per update); WATCHDOG=1
// every 0.5 s from the start; RELOADING=1 (with MONOTONIC_USEC) and
// READY=1 around a SIGHUP; STOPPING=1 on SIGTERM, and exit 0.
func TestNotify(t *testing.T) {
	bin := peers.BuildNtptool(t)
	dir := t.TempDir()
	srv := NewServer(t, 0, false)
	ns := NewNotifySocket(t, dir)
	cfg := Config(t, dir, srv, "")
	d := StartDaemon(t, bin, cfg, "NOTIFY_SOCKET="+ns.Path, "WATCHDOG_USEC=1000000")
	count := func(field string) int {
		n := 0
		for _, m := range ns.Got() {
			if m.Has(field) {
				n++
			}
		}
		return n
	}
	d.Until(t, 10*time.Second, "3 watchdog pings", func() bool { return count("WATCHDOG=1") >= 3 })
	if n := count("READY=1"); n != 0 {
		t.Fatalf("READY=1 before any clock update: %+v", ns.Got())
	}
	answered := time.Duration(0)
	for _, m := range ns.Got() {
		answered = max(answered, m.At)
	}
	srv.SetAnswering(true)
	d.Until(t, 20*time.Second, "READY=1", func() bool { return count("READY=1") == 1 })
	var ready Notification
	for _, m := range ns.Got() {
		if m.Has("READY=1") {
			ready = m
		}
	}
	if st := ready.Get("STATUS"); !strings.Contains(st, "127.0.0.1 (127.0.0.1:") || !strings.Contains(st, "offset") || ready.At < answered {
		t.Errorf("READY=1 at %v (server answering from %v) with STATUS=%q, want the source and offset", ready.At, answered, st)
	}
	// Updates every second; STATUS= at most every 10 s for the same state.
	d.Until(t, 20*time.Second, "a second STATUS=", func() bool { return count("STATUS=") >= 2 })
	var statuses []Notification
	for _, m := range ns.Got() {
		if m.Has("STATUS=") {
			statuses = append(statuses, m)
		}
	}
	gap := statuses[1].At - statuses[0].At
	if gap < 9900*time.Millisecond {
		t.Errorf("STATUS= lines %v apart: %q then %q; want the same state rate-limited to 10 s", gap, statuses[0].Get("STATUS"), statuses[1].Get("STATUS"))
	}
	replies := srv.Replies()

	d.Signal(t, syscall.SIGHUP)
	d.Until(t, 10*time.Second, "READY=1 after RELOADING=1", func() bool { return count("READY=1") == 2 })
	var reload []string
	for _, m := range ns.Got() {
		if m.Has("RELOADING=1") || m.Has("READY=1") {
			reload = append(reload, strings.Join(m.Fields, " "))
		}
	}
	if len(reload) != 3 || !strings.HasPrefix(reload[1], "RELOADING=1 MONOTONIC_USEC=") || !strings.HasPrefix(reload[2], "READY=1 STATUS=") {
		t.Errorf("around SIGHUP: %q, want READY=1, RELOADING=1 MONOTONIC_USEC=…, READY=1 STATUS=…", reload)
	}
	if err := d.Stop(t, 10*time.Second); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	got := ns.Got()
	if last := got[len(got)-1]; !last.Has("STOPPING=1") {
		t.Errorf("last notification %q, want STOPPING=1", last.Fields)
	}
	var pings []time.Duration
	for _, m := range got {
		if m.Has("WATCHDOG=1") {
			pings = append(pings, m.At)
		}
	}
	var gaps []float64
	for i := 1; i < len(pings); i++ {
		gaps = append(gaps, (pings[i] - pings[i-1]).Seconds())
	}
	sort.Float64s(gaps)
	median := gaps[len(gaps)/2]
	if median < 0.4 || median > 0.6 {
		t.Errorf("watchdog pings every %.3f s (median of %d), want half of WATCHDOG_USEC, 0.5 s", median, len(gaps))
	}
	t.Logf("%d notifications; READY=1 %.3f s after the server answered; STATUS= gap %.3f s; watchdog median %.4f s (min %.4f, max %.4f) over %d pings; %d NTP replies",
		len(got), (ready.At - answered).Seconds(), gap.Seconds(), median, gaps[0], gaps[len(gaps)-1], len(pings), replies)
}

// journalEntries reads the entries of the journal files.
func journalEntries(t *testing.T, files ...string) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	err := audit.Scan(files, func(r audit.Record) error {
		if r.Parsed.Entry != nil {
			out = append(out, *r.Parsed.Entry)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

func countKind(es []audit.Entry, k audit.Kind) int {
	n := 0
	for _, e := range es {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// Audit acceptance: the daemon without clock control against a server 3 s
// ahead writes the step it would make and slews, marked not applied;
// logrotate's rename plus SIGHUP continues the chain in a new file;
// ntptool audit shows the entries; --verify passes over both files, and
// fails at the right line after one line is edited, one deleted, or the
// file truncated (at a line boundary, against the head; inside a line).
func TestAuditJournal(t *testing.T) {
	bin := peers.BuildNtptool(t)
	dir := t.TempDir()
	srv := NewServer(t, 3*time.Second, true)
	cfg := Config(t, dir, srv, "")
	journal := filepath.Join(dir, "log", "audit.jsonl")
	d := StartDaemon(t, bin, cfg)
	d.Until(t, 20*time.Second, "a step and 3 slews", func() bool {
		es := journalEntries(t, journal)
		return countKind(es, audit.KindStep) == 1 && countKind(es, audit.KindSlew) >= 3
	})
	// logrotate (create mode): rename, then the daemon is told.
	if err := os.Rename(journal, journal+".1"); err != nil {
		t.Fatal(err)
	}
	d.Signal(t, syscall.SIGHUP)
	d.Until(t, 20*time.Second, "2 slews in the new file", func() bool {
		return countKind(journalEntries(t, journal), audit.KindSlew) >= 2
	})
	if err := d.Stop(t, 10*time.Second); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}

	code, out, errOut := ntptool(t, bin, "audit", "--config", cfg)
	if code != 0 {
		t.Fatalf("ntptool audit: exit %d: %s", code, errOut)
	}
	var stepLine string
	slews := 0
	for line := range strings.SplitSeq(out, "\n") {
		switch {
		case strings.Contains(line, " step "):
			stepLine = line
		case strings.Contains(line, " slew "):
			slews++
			if !strings.Contains(line, "not applied (no clock control)") {
				t.Errorf("slew shown as %q, want not applied", line)
			}
		}
	}
	if !strings.Contains(stepLine, "+3.0") || !strings.Contains(stepLine, "not applied (no clock control)") || !strings.Contains(stepLine, "sources: 127.0.0.1 (127.0.0.1:") ||
		!strings.Contains(out, "journal header: reopened, continues after seq") || slews < 5 {
		t.Errorf("ntptool audit shows the step as %q and %d slews:\n%s", stepLine, slews, out)
	}

	code, out, errOut = ntptool(t, bin, "audit", "--verify", "--config", cfg)
	if code != 0 || !strings.Contains(out, "in 2 file(s), chain from the journal's creation") || !strings.Contains(out, "reaches the head") {
		t.Fatalf("ntptool audit --verify: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("verify: %s", strings.TrimSpace(out))

	// Tampering, each on a copy of the journal (first file, then the
	// current one) and its head.
	old, err := os.ReadFile(journal + ".1")
	if err != nil {
		t.Fatal(err)
	}
	cur, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	head, err := os.ReadFile(journal + ".head")
	if err != nil {
		t.Fatal(err)
	}
	oldLines := strings.SplitAfter(string(old), "\n")
	stepAt := slices.IndexFunc(oldLines, func(l string) bool { return strings.Contains(l, `"kind":"step"`) })
	curLines := strings.SplitAfter(string(cur), "\n")
	curLines = curLines[:len(curLines)-1] // after the last "\n"
	for _, tt := range []struct {
		name     string
		old, cur string
		wantAt   string // file:line named
		wantWhy  string
	}{
		{"a step made smaller", strings.Join(slices.Concat(oldLines[:stepAt], []string{strings.Replace(oldLines[stepAt], `"delta_seconds":3.`, `"delta_seconds":1.`, 1)}, oldLines[stepAt+1:]), ""),
			string(cur), fmt.Sprintf("audit.jsonl.1:%d:", stepAt+1), "changed after it was written"},
		{"a line deleted", strings.Join(slices.Concat(oldLines[:stepAt], oldLines[stepAt+1:]), ""),
			string(cur), fmt.Sprintf("audit.jsonl.1:%d:", stepAt+1), "entries missing before this one"},
		{"the last two lines cut off", string(old), strings.Join(curLines[:len(curLines)-2], ""),
			fmt.Sprintf("audit.jsonl:%d:", len(curLines)-2), "the last 2 entries were removed"},
		{"cut inside the last line", string(old), string(cur[:len(cur)-20]),
			fmt.Sprintf("audit.jsonl:%d:", len(curLines)), "torn last line"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cp := t.TempDir()
			for name, data := range map[string]string{"audit.jsonl.1": tt.old, "audit.jsonl": tt.cur, "audit.jsonl.head": string(head)} {
				if err := os.WriteFile(filepath.Join(cp, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, out, errOut := ntptool(t, bin, "audit", "--verify", filepath.Join(cp, "audit.jsonl"), filepath.Join(cp, "audit.jsonl.1"))
			if code != 1 || !strings.Contains(errOut, filepath.Join(cp, tt.wantAt)) || !strings.Contains(errOut, tt.wantWhy) {
				t.Errorf("exit %d, stderr %q, want 1 naming %s: %s\n%s", code, errOut, tt.wantAt, tt.wantWhy, out)
			}
		})
	}
}

// capBits parses a /proc status capability mask.
func capBits(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		t.Fatalf("capability mask %q: %v", s, err)
	}
	return v
}

const capSysTime = 25

// Least privilege acceptance: started as root (CAP_SYS_TIME outside its
// bounding set, --no-clock-control) with [run] user = "nobody", the daemon
// switches to nobody, holds no capability at all in any set, is under
// Landlock (no_new_privs), still synchronises and answers on its control
// socket, and writes its journal and drift file in the directories it
// created for the user. With hooks configured it first starts the
// privileged hook helper: root, without CAP_SYS_TIME, gone with the daemon.
func TestDropsPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root")
	}
	bin := peers.BuildNtptool(t)
	for _, tt := range []struct {
		name, extra string
		helper      bool
	}{
		{"no hooks", "[run]\nuser = \"nobody\"\n", false},
		{"hooks in the helper", "[run]\nuser = \"nobody\"\n", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// World-traversable, so that nobody reaches what it was given.
			dir, err := os.MkdirTemp("", "opstest-drop-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			srv := NewServer(t, 0, true)
			addr := freeTCP(t)
			cfg := Config(t, dir, srv, tt.extra+fmt.Sprintf("[metrics]\nlisten = %q\n", addr))
			if tt.helper {
				data, _ := os.ReadFile(cfg)
				data = bytes.Replace(data, []byte(`dhcp_renew = "off"`), []byte("dhcp_renew = \"off\"\npost_step = [[\"/bin/true\"]]"), 1)
				if err := os.WriteFile(cfg, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			d := StartDaemon(t, bin, cfg)
			sock := filepath.Join(dir, "run", "control.sock")
			d.Until(t, 20*time.Second, "synchronised", func() bool {
				code, out, _ := ntptool(t, bin, "status", "--json", "--socket", sock)
				return code == 0 && strings.Contains(out, `"sync_state": "synchronised"`)
			})
			st, err := ProcStatus(d.Pid())
			if err != nil {
				t.Fatal(err)
			}
			// The process metrics read /proc/self and /proc/stat: Landlock
			// lets them.
			m := scrape(t, "http://"+addr)
			if m[sample{"process_open_fds", ""}] == 0 || m[sample{"process_start_time_seconds", ""}] == 0 || m[sample{"ntptool_synchronized", ""}] != 1 {
				t.Errorf("after the drop: process_open_fds %v, process_start_time_seconds %v, ntptool_synchronized %v",
					m[sample{"process_open_fds", ""}], m[sample{"process_start_time_seconds", ""}], m[sample{"ntptool_synchronized", ""}])
			}
			const nobody = "65534 65534 65534 65534"
			for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
				if capBits(t, st[k]) != 0 {
					t.Errorf("%s = %s, want no capability", k, st[k])
				}
			}
			if st["Uid"] != nobody || st["Gid"] != nobody || st["Groups"] != "" || st["NoNewPrivs"] != "1" {
				t.Errorf("Uid %q Gid %q Groups %q NoNewPrivs %q, want nobody, no groups, no_new_privs (Landlock)", st["Uid"], st["Gid"], st["Groups"], st["NoNewPrivs"])
			}
			kids, err := Children(d.Pid())
			if err != nil {
				t.Fatal(err)
			}
			if !tt.helper && len(kids) != 0 {
				t.Errorf("children %v, want none without hooks", kids)
			}
			if tt.helper {
				if len(kids) != 1 {
					t.Fatalf("children %v, want the hook helper", kids)
				}
				hs, err := ProcStatus(kids[0])
				if err != nil {
					t.Fatal(err)
				}
				if hs["Uid"] != "0 0 0 0" || capBits(t, hs["CapBnd"])&(1<<capSysTime) != 0 || capBits(t, hs["CapEff"])&(1<<capSysTime) != 0 {
					t.Errorf("helper Uid %q CapEff %s CapBnd %s, want root without cap_sys_time", hs["Uid"], hs["CapEff"], hs["CapBnd"])
				}
				t.Logf("helper %d: Uid %s CapEff %s CapBnd %s", kids[0], hs["Uid"], hs["CapEff"], hs["CapBnd"])
			}
			t.Logf("daemon %d: Uid %s Gid %s CapEff %s CapBnd %s NoNewPrivs %s", d.Pid(), st["Uid"], st["Gid"], st["CapEff"], st["CapBnd"], st["NoNewPrivs"])
			// SIGHUP as nobody: the configuration is read again and the
			// journal reopened (it was given to nobody before the drop).
			journal := filepath.Join(dir, "log", "audit.jsonl")
			before := len(journalEntries(t, journal))
			d.Signal(t, syscall.SIGHUP)
			d.Until(t, 10*time.Second, "reloaded, and an entry after it", func() bool {
				log, _ := os.ReadFile(d.Log)
				return bytes.Contains(log, []byte("configuration reloaded")) && len(journalEntries(t, journal)) > before
			})
			if err := d.Stop(t, 20*time.Second); err != nil {
				t.Errorf("exit after SIGTERM: %v", err)
			}
			for _, k := range kids {
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", k)); err == nil {
					if s, _ := ProcStatus(k); s["State"] != "" && !strings.HasPrefix(s["State"], "Z") {
						t.Errorf("the hook helper %d outlived the daemon (%s)", k, s["State"])
					}
				}
			}
			log, _ := os.ReadFile(d.Log)
			if !bytes.Contains(log, []byte("privileges dropped")) || !bytes.Contains(log, []byte("landlocked=true")) {
				t.Errorf("log does not say the privileges were dropped under Landlock:\n%s", log)
			}
			for _, line := range strings.Split(string(log), "\n") {
				if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
					t.Errorf("log: %s", line)
				}
			}
			// What nobody wrote after the drop: the drift file at exit, the
			// journal's entries and head.
			for _, f := range []string{filepath.Join(dir, "state", "drift"), filepath.Join(dir, "log", "audit.jsonl.head")} {
				fi, err := os.Stat(f)
				if err != nil {
					t.Errorf("%v", err)
					continue
				}
				if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != 65534 {
					t.Errorf("%s owned by %d, want nobody", f, uid)
				}
			}
			code, out, errOut := ntptool(t, bin, "audit", "--verify", filepath.Join(dir, "log", "audit.jsonl"))
			if code != 0 {
				t.Errorf("journal written as nobody does not verify: %s%s", out, errOut)
			}
		})
	}
}
