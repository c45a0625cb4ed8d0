package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ntptool/ntptool/stephook"
)

func runArgs(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestLeaseRenewHelp: the command lines and JSON keys are a contract; the
// help teaches them.
func TestLeaseRenewHelp(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"lease", "--help"}, []string{"lease [--json]", "MAX-BACK", "AT-RISK", "COVERED", "valid_lft_seconds",
			"max_backward_step_seconds", "max_forward_step_seconds", "at_risk", "covered", "lease_file", "ip netns exec"}},
		{[]string{"renew", "--help"}, []string{"renew [--dry-run]", "[IFACE...]", "SIGTERM", "never 'dhclient -x'",
			"dhcpcd -N IFACE", "SIGUSR1", "RenewLink", "Reapply", "outcome", "valid_lft_seconds", "Exit status"}},
	} {
		code, out, _ := runArgs(tt.args...)
		if code != exitOK {
			t.Errorf("%q: exit %d", tt.args, code)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: help lacks %q", tt.args, w)
			}
		}
	}
}

// TestLeaseRenewUsage runs the commands on this host: only read-only
// forms (lease, renew --dry-run), so that no DHCP client of the machine is
// touched.
func TestLeaseRenewUsage(t *testing.T) {
	code, out, stderr := runArgs("lease", "--json")
	var got map[string][]json.RawMessage
	if code != exitOK || json.Unmarshal([]byte(out), &got) != nil || got["addresses"] == nil {
		t.Errorf("lease --json: exit %d, stdout %q, stderr %q; want {\"addresses\": [...]}", code, out, stderr)
	}
	if code, _, stderr := runArgs("lease", "extra"); code != exitUsage {
		t.Errorf("lease extra: exit %d (%s), want %d", code, stderr, exitUsage)
	}
	if code, _, stderr := runArgs("renew", "--dry-run", "--config", "/nonexistent/ntptool.toml"); code != exitFailure || !strings.Contains(stderr, "nonexistent") {
		t.Errorf("missing config: exit %d, %q", code, stderr)
	}
	code, out, _ = runArgs("renew", "--dry-run", "--json", "ntpt-no-such0")
	var rep struct {
		Results []struct {
			Outcome    string   `json:"outcome"`
			Interfaces []string `json:"interfaces"`
			Error      string   `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitFailure {
		t.Fatalf("renew --dry-run IFACE: exit %d, %v: %s", code, err, out)
	}
	last := rep.Results[len(rep.Results)-1]
	if last.Outcome != "skipped" || last.Interfaces[0] != "ntpt-no-such0" || !strings.Contains(last.Error, "no DHCP client") {
		t.Errorf("results %+v", rep.Results)
	}
	if code, _, stderr := runArgs("renew", "--bogus"); code != exitUsage {
		t.Errorf("renew --bogus: exit %d (%s)", code, stderr)
	}
}

func TestWriteTables(t *testing.T) {
	back := 73 * time.Second
	var b bytes.Buffer
	err := writeLeases(&b, []stephook.AddrReport{{Interface: "eth0", Valid: 120 * time.Second, Preferred: 120 * time.Second,
		Client: stephook.DHClient, PID: 42, LeaseFile: "/var/lib/dhcp/dhclient.leases",
		Margin: stephook.Margin{MaxBackward: &back, Note: "why"}, Covered: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"dhclient[42]", "73s", "120s", "yes", "# eth0", "why (lease file /var/lib/dhcp/dhclient.leases)"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("lease table lacks %q:\n%s", w, b.String())
		}
	}
	b.Reset()
	err = writeRenew(&b, []stephook.Result{{Name: "udhcpc[7]", Interfaces: []string{"eth1"}, Outcome: stephook.OK, Action: "SIGUSR1 to udhcpc pid 7",
		Before: []stephook.Lifetimes{{Valid: 90 * time.Second}}, After: []stephook.Lifetimes{{Valid: 120 * time.Second}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"eth1", "udhcpc[7]", "ok", "90s", "120s", "SIGUSR1"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("renew table lacks %q:\n%s", w, b.String())
		}
	}
}
