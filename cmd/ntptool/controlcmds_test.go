package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ntptool/ntptool/control"
)

// daemonSnapshot is a fake daemon's state: synchronised to ntp1 (stratum
// 2), a pool member unreachable, a falseticker.
func daemonSnapshot() *control.Snapshot {
	t0 := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	return &control.Snapshot{
		Schema: control.SchemaVersion, Time: t0,
		Status: control.Status{
			SyncState: control.StateSynchronised, ClockControl: false,
			ReferenceID: "7F000001", ReferenceName: "ntp1.test", ReferenceAddress: "127.0.0.1:11123",
			Stratum: 3, RefTime: t0.Add(-10 * time.Second),
			SystemTimeOffsetSeconds: 2.5e-6, LastOffsetSeconds: 1e-6, RMSOffsetSeconds: 3e-6,
			FrequencyPPM: -7.125, SkewPPM: 0.05, RootDelaySeconds: 3e-4, RootDispersionSeconds: 1e-4,
			UpdateIntervalSeconds: 16, Leap: control.LeapNormal, NextPollSeconds: 5,
		},
		Sources: []control.Source{
			{State: control.SourceSelected, Tally: "*", Name: "ntp1.test", Address: "127.0.0.1:11123", Stratum: 2, Reach: 0o377, ReachOctal: "377", PollLog2: 4,
				LastSample: &control.Sample{AgeSeconds: 3, OffsetSeconds: 2e-6, MeasuredOffsetSeconds: 4e-6, ErrorSeconds: 1e-5, DelaySeconds: 6e-5, JitterSeconds: 2e-6}},
			{State: control.SourceUnreachable, Tally: "?", Name: "pool.test", Address: "127.0.0.2:11123", Pool: true, ReachOctal: "0", PollLog2: 6},
			{State: control.SourceFalseticker, Tally: "x", Name: "liar.test", Address: "127.0.0.3:11123", Stratum: 2, Reach: 0o376, ReachOctal: "376", PollLog2: 4,
				LastSample: &control.Sample{AgeSeconds: 1, OffsetSeconds: -0.5, MeasuredOffsetSeconds: -0.5, ErrorSeconds: 1e-5, DelaySeconds: 6e-5, JitterSeconds: 2e-6}},
		},
	}
}

// snapshots serves a fixed sequence: element i to the i-th Load, the last
// one after.
type snapshots struct {
	seq   []*control.Snapshot
	loads atomic.Int64
}

func (s *snapshots) Load() *control.Snapshot {
	i := int(s.loads.Add(1)) - 1
	return s.seq[min(i, len(s.seq)-1)]
}

// startControl runs an in-process control server over seq and returns
// its socket path.
func startControl(t *testing.T, seq ...*control.Snapshot) (string, *snapshots) {
	t.Helper()
	src := &snapshots{seq: seq}
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := control.Listen(path, src, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() { s.Close(); <-done })
	return path, src
}

func TestStatusCommand(t *testing.T) {
	snap := daemonSnapshot()
	path, _ := startControl(t, snap)
	code, out, errOut := runCmd(t, "status", "--socket", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"Reference ID    : 7F000001 (ntp1.test, 127.0.0.1:11123)\n",
		"Stratum         : 3\n",
		"System time     : 0.000002500 seconds fast of NTP time\n",
		"Frequency       : 7.125 ppm fast (corrected by -7.125 ppm)\n",
		"Sync state      : synchronised\n",
		"Clock control   : no",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}

	code, out, errOut = runCmd(t, "status", "--json", "--socket", path)
	if code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errOut)
	}
	var r control.Reply
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	want := control.Reply{Schema: 1, Time: snap.Time, Status: &snap.Status}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("--json (-want +got):\n%s", diff)
	}
	var keys map[string]json.RawMessage
	_ = json.Unmarshal([]byte(out), &keys)
	if _, ok := keys["sources"]; ok {
		t.Error("status --json carries sources")
	}
}

func TestSourcesCommand(t *testing.T) {
	snap := daemonSnapshot()
	path, _ := startControl(t, snap)
	code, out, errOut := runCmd(t, "sources", "--socket", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || strings.Contains(out, "Tally:") {
		t.Fatalf("want a header, a rule and 3 sources, no legend:\n%s", out)
	}
	for i, want := range []string{"* ntp1.test", "? pool.test", "x liar.test"} {
		if !strings.HasPrefix(lines[2+i], want) {
			t.Errorf("line %q, want it to start with %q", lines[2+i], want)
		}
	}
	if !strings.Contains(lines[2], " 377 ") || !strings.Contains(lines[4], " 376 ") || !strings.Contains(lines[4], "-500.0ms") {
		t.Errorf("reach or offset missing:\n%s", out)
	}
	_, out, _ = runCmd(t, "sources", "-v", "--socket", path)
	if !strings.Contains(out, "'x' falseticker") {
		t.Errorf("-v without the legend:\n%s", out)
	}

	code, out, errOut = runCmd(t, "sources", "--json", "--socket", path)
	if code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errOut)
	}
	var r control.Reply
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(snap.Sources, r.Sources); diff != "" || r.Status != nil {
		t.Errorf("--json sources (-want +got):\n%s", diff)
	}
}

func TestControlSocketFromConfig(t *testing.T) {
	path, _ := startControl(t, daemonSnapshot())
	good := writeFile(t, "ntptool.toml", "[control]\nsocket = \""+path+"\"\n")
	if code, out, errOut := runCmd(t, "status", "--config", good); code != 0 || !strings.Contains(out, "Stratum         : 3") {
		t.Errorf("--config: exit %d, %s%s", code, out, errOut)
	}
	// --socket wins over --config.
	if code, _, errOut := runCmd(t, "sources", "--config", good, "--socket", filepath.Join(t.TempDir(), "none.sock")); code != 1 {
		t.Errorf("--socket over --config: exit %d (%s)", code, errOut)
	}
	disabled := writeFile(t, "off.toml", "[control]\nsocket = \"\"\n")
	if code, _, errOut := runCmd(t, "status", "--config", disabled); code != 2 || !strings.Contains(errOut, "disables the control socket") {
		t.Errorf("disabled socket: exit %d, %s", code, errOut)
	}
	broken := writeFile(t, "bad.toml", "[control]\nsocket = 5\n")
	if code, _, _ := runCmd(t, "wait-sync", "--config", broken); code != 2 {
		t.Errorf("broken config: exit %d, want 2", code)
	}
}

func TestControlCommandsWithoutDaemon(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "control.sock")
	for _, args := range [][]string{{"status"}, {"sources", "-v"}, {"status", "--json"}} {
		code, out, errOut := runCmd(t, append(args, "--socket", missing)...)
		if code != 1 || out != "" || !strings.Contains(errOut, "is ntptool run running") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	// A daemon that is starting answers with an error: exit 1 too.
	path, _ := startControl(t, nil)
	if code, _, errOut := runCmd(t, "status", "--socket", path); code != 1 || !strings.Contains(errOut, "not published") {
		t.Errorf("starting daemon: exit %d, %s", code, errOut)
	}
}

func TestWaitSync(t *testing.T) {
	synced := daemonSnapshot()
	unsynced := daemonSnapshot()
	unsynced.Status.SyncState = control.StateUnsynchronised
	far := daemonSnapshot()
	far.Status.SystemTimeOffsetSeconds = 0.2

	t.Run("synchronised at once", func(t *testing.T) {
		path, _ := startControl(t, synced)
		code, out, errOut := runCmd(t, "wait-sync", "--socket", path, "--timeout", "10s")
		if code != 0 || !strings.Contains(out, "synchronised: offset +0.000003 s") || !strings.Contains(out, "reference ntp1.test, stratum 3") {
			t.Errorf("exit %d, %q %q", code, out, errOut)
		}
	})
	t.Run("waits through unsynchronised and too far", func(t *testing.T) {
		path, src := startControl(t, nil, unsynced, unsynced, far, synced)
		code, out, errOut := runCmd(t, "wait-sync", "--socket", path, "--max-offset", "10ms", "--interval", "1ms", "--timeout", "10s")
		if code != 0 || !strings.Contains(out, "|offset| 0.000003 s <= 10ms") {
			t.Errorf("exit %d, %q %q", code, out, errOut)
		}
		if n := src.loads.Load(); n != 5 {
			t.Errorf("%d status queries, want 5 (starting, unsynchronised ×2, too far, synchronised)", n)
		}
	})
	t.Run("timeout: offset beyond the bound", func(t *testing.T) {
		path, _ := startControl(t, far)
		code, out, errOut := runCmd(t, "wait-sync", "--socket", path, "--max-offset", "1ms", "--interval", "10ms", "--timeout", "200ms")
		if code != 1 || out != "" || !strings.Contains(errOut, "not synchronised within 200ms: offset +0.200000 s beyond ±1ms") {
			t.Errorf("exit %d, %q %q", code, out, errOut)
		}
	})
	t.Run("timeout: holdover is not synchronised", func(t *testing.T) {
		hold := daemonSnapshot()
		hold.Status.SyncState = control.StateHoldover
		path, _ := startControl(t, hold)
		if code, _, errOut := runCmd(t, "wait-sync", "--socket", path, "--interval", "10ms", "--timeout", "100ms"); code != 1 || !strings.Contains(errOut, "sync state holdover") {
			t.Errorf("exit %d, %q", code, errOut)
		}
	})
	t.Run("timeout: no daemon", func(t *testing.T) {
		code, _, errOut := runCmd(t, "wait-sync", "--socket", filepath.Join(t.TempDir(), "none.sock"), "--interval", "10ms", "--timeout", "100ms")
		if code != 1 || !strings.Contains(errOut, "connect to the daemon's control socket") {
			t.Errorf("exit %d, %q", code, errOut)
		}
	})
	for _, args := range [][]string{
		{"wait-sync", "--max-offset", "-1s"},
		{"wait-sync", "--timeout", "soon"},
		{"wait-sync", "--interval", "0s"},
		{"wait-sync", "extra"},
		{"status", "--bogus"},
		{"sources", "extra"},
	} {
		if code, _, _ := runCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func TestControlCommandsHelp(t *testing.T) {
	for cmd, wants := range map[string][]string{
		"status":    {"chronyc tracking", "holdover", "--json", "docs/control.md", "Exit status: 0 answered, 1"},
		"sources":   {"ntpq -p", "falseticker", "377", "octal", "-v"},
		"wait-sync": {"--max-offset", "--timeout", "Exit status: 0 synchronised within the bound, 1 timed out", "TimeoutStartSec"},
	} {
		code, out, _ := runCmd(t, cmd, "--help")
		if code != 0 {
			t.Errorf("%s --help: exit %d", cmd, code)
		}
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s --help lacks %q", cmd, w)
			}
		}
	}
}
