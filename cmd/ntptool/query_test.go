package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ntptool/ntptool/internal/peers"
)

// queryJSON is the part of `query --json` the tests read.
type queryJSON struct {
	Servers []struct {
		Server        string  `json:"server"`
		Valid         bool    `json:"valid"`
		Verdict       string  `json:"verdict"`
		Stratum       int     `json:"stratum"`
		OffsetSeconds float64 `json:"offset_seconds"`
		DelaySeconds  float64 `json:"delay_seconds"`
	} `json:"servers"`
	Valid int `json:"valid"`
}

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func decodeQuery(t *testing.T, out []byte) queryJSON {
	t.Helper()
	var q queryJSON
	if err := json.Unmarshal(out, &q); err != nil {
		t.Fatalf("query --json output is not JSON: %v\n%s", err, out)
	}
	return q
}

// checkPeerReply asserts the acceptance figures: a valid reply, the served
// stratum, |offset| < 5 ms (server and client share this machine's clock).
func checkPeerReply(t *testing.T, q queryJSON, wantStratum int) {
	t.Helper()
	if q.Valid != 1 || len(q.Servers) != 1 {
		t.Fatalf("want one valid server, got %+v", q)
	}
	s := q.Servers[0]
	if !s.Valid || s.Stratum != wantStratum || math.Abs(s.OffsetSeconds) >= 0.005 {
		t.Errorf("got %+v, want valid, stratum %d, |offset| < 5 ms", s, wantStratum)
	}
	t.Logf("%s: stratum %d offset %+.6f s delay %.6f s", s.Server, s.Stratum, s.OffsetSeconds, s.DelaySeconds)
}

func TestQueryChronyd(t *testing.T) {
	addr := peers.StartChronyServer(t)
	code, out, errOut := runCmd(t, "query", "--json", "--samples", "3", addr)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	checkPeerReply(t, decodeQuery(t, []byte(out)), 2)

	code, out, _ = runCmd(t, "query", addr)
	if code != exitOK || !strings.Contains(out, "127.127.1.1") || !strings.Contains(out, " ok") {
		t.Errorf("table output (exit %d) lacks chronyd's refid or the ok verdict:\n%s", code, out)
	}
}

// NTPsec serves only on port 123, so it runs in a namespace of its own and
// the ntptool binary queries it from inside that namespace.
func TestQueryNTPsec(t *testing.T) {
	ns := peers.NewNetns(t)
	peers.StartNTPsecServer(t, ns)
	bin := peers.BuildNtptool(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := ns.Command(ctx, bin, "query", "--json", "127.0.0.1").Output()
	if err != nil {
		t.Fatalf("ntptool query in netns: %v\n%s", err, out)
	}
	checkPeerReply(t, decodeQuery(t, out), 2)
}

func TestCheckAgainstChronyd(t *testing.T) {
	addr := peers.StartChronyServer(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantLine string
	}{
		{"ok", []string{"--warn", "100ms", "--crit", "1s", addr}, nagiosOK, "NTP OK: offset "},
		{"warning", []string{"--warn", "1ns", "--crit", "1h", addr}, nagiosWarning, "NTP WARNING: offset "},
		{"critical", []string{"--warn", "1ns", "--crit", "1ns", addr}, nagiosCritical, "NTP CRITICAL: offset "},
		{"no valid reply", []string{"-t", "200ms", "127.0.0.1:1"}, nagiosCritical, "NTP CRITICAL: no valid reply"},
		{"one of two valid", []string{"-t", "200ms", addr, "127.0.0.1:1"}, nagiosOK, "1 of 2 server address(es) valid"},
		{"warn above crit", []string{"--warn", "2s", "--crit", "1s", addr}, nagiosUnknown, "NTP UNKNOWN: --warn 2s is larger"},
		{"no server", nil, nagiosUnknown, "NTP UNKNOWN: check needs at least one SERVER"},
		{"bad flag", []string{"--frobnicate", addr}, nagiosUnknown, "NTP UNKNOWN: unknown flag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, _ := runCmd(t, append([]string{"check"}, tc.args...)...)
			if code != tc.wantCode || !strings.Contains(out, tc.wantLine) {
				t.Errorf("exit %d, output %q; want exit %d and %q", code, out, tc.wantCode, tc.wantLine)
			}
			if tc.wantCode != nagiosUnknown && !strings.Contains(out, "|") {
				t.Errorf("no perfdata in %q", out)
			}
		})
	}
}

func TestQueryExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"no server", []string{"query"}, exitUsage},
		{"bad flag", []string{"query", "--frobnicate", "x"}, exitUsage},
		{"bad samples", []string{"query", "--samples", "0", "127.0.0.1"}, exitUsage},
		{"-4 and -6", []string{"query", "-4", "-6", "127.0.0.1"}, exitUsage},
		{"bad address", []string{"query", "127.0.0.1:99999"}, exitFailure},
		{"nothing listening", []string{"query", "-t", "200ms", "127.0.0.1:1"}, exitFailure},
		{"unknown command", []string{"frobnicate"}, exitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, out, errOut := runCmd(t, tc.args...); code != tc.want {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.want, out, errOut)
			}
		})
	}
}
