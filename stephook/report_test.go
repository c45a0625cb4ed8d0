package stephook

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ntptool/ntptool/audit"
)

// keys returns the sorted keys of a JSON object.
func keys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestJSONContract: the keys of `ntptool renew --json` and `ntptool lease
// --json` (README.md) do not change by accident.
func TestJSONContract(t *testing.T) {
	p := netip.MustParsePrefix("192.0.2.10/24")
	res := Result{Hook: "renew", Name: "udhcpc[7]", Client: UDHCPC, Outcome: Failed, Err: errors.New("no answer"),
		Duration: 1500 * time.Millisecond, Before: []Lifetimes{{"eth0", p, 90 * time.Second, Forever}}}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"action", "after", "before", "client", "duration_seconds", "error", "hook", "interfaces", "name", "outcome", "output"}
	if got := keys(t, b); !slices.Equal(got, want) {
		t.Errorf("result keys %q, want %q", got, want)
	}
	var back struct {
		Error    string  `json:"error"`
		Duration float64 `json:"duration_seconds"`
		Before   []struct {
			Address   string `json:"address"`
			Valid     int    `json:"valid_lft_seconds"`
			Preferred int    `json:"preferred_lft_seconds"`
		} `json:"before"`
	}
	if err := json.Unmarshal(b, &back); err != nil || back.Error != "no answer" || back.Duration != 1.5 ||
		back.Before[0].Address != "192.0.2.10/24" || back.Before[0].Valid != 90 || back.Before[0].Preferred != -1 {
		t.Errorf("result %s", b)
	}

	m := 60 * time.Second
	rep := AddrReport{Interface: "eth0", Address: p, Valid: 120 * time.Second, Preferred: 120 * time.Second, Client: DHClient, PID: 9,
		Lease:  &Lease{Address: p.Addr(), LeaseTime: 120 * time.Second, Renew: utc("2026-12-01T09:01:00Z")},
		Margin: Margin{MaxBackward: &m, Note: "n"}, Covered: true}
	b, err = json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"address", "backend", "client", "family", "interface", "lease", "lease_file", "pid", "pid_file", "preferred_lft_seconds", "slaac", "valid_lft_seconds", "verdict"}
	if got := keys(t, b); !slices.Equal(got, want) {
		t.Errorf("address keys %q, want %q", got, want)
	}
	var v struct {
		Lease   json.RawMessage `json:"lease"`
		Verdict json.RawMessage `json:"verdict"`
	}
	_ = json.Unmarshal(b, &v)
	if got, want := keys(t, v.Lease), []string{"address", "expire", "lease_time_seconds", "preferred_life_seconds", "rebind", "renew"}; !slices.Equal(got, want) {
		t.Errorf("lease keys %q, want %q", got, want)
	}
	if got, want := keys(t, v.Verdict), []string{"at_risk", "covered", "immune", "max_backward_step_seconds", "max_forward_step_seconds", "note"}; !slices.Equal(got, want) {
		t.Errorf("verdict keys %q, want %q", got, want)
	}
	var vv struct {
		Back *float64 `json:"max_backward_step_seconds"`
		Fwd  *float64 `json:"max_forward_step_seconds"`
	}
	if err := json.Unmarshal(v.Verdict, &vv); err != nil || vv.Back == nil || *vv.Back != 60 || vv.Fwd != nil {
		t.Errorf("verdict %s", v.Verdict)
	}
}

// TestAuditHooks: every hook run of a report becomes one audit journal
// hook run, in order, with its phase, name, result, error and duration.
func TestAuditHooks(t *testing.T) {
	rep := Report{Event: Event{Kind: PostStep, Step: -time.Hour}, Results: []Result{
		{Hook: "renew", Name: "dhclient[500]", Client: DHClient, Outcome: OK, Duration: 150 * time.Millisecond},
		{Hook: "verify", Name: "udhcpc[300]", Client: UDHCPC, Outcome: Failed, Err: errors.New("still not renewed: 192.0.2.10/24 on eth0 (valid_lft 20 s)"), Duration: time.Second},
		{Hook: "exec", Name: "/usr/local/bin/notify", Outcome: TimedOut, Err: errors.New("killed after hooks.timeout 10s"), Duration: 10 * time.Second},
		{Hook: "exec", Name: "/bin/true", Outcome: Skipped, Err: errors.New("skipped: an earlier hook failed and the policy is abort")},
	}}
	want := []audit.HookRun{
		{Name: "dhclient[500]", Phase: "post_step", Result: "ok", DurationSeconds: 0.15},
		{Name: "verify udhcpc[300]", Phase: "post_step", Result: "failed", Error: "still not renewed: 192.0.2.10/24 on eth0 (valid_lft 20 s)", DurationSeconds: 1},
		{Name: "/usr/local/bin/notify", Phase: "post_step", Result: "timeout", Error: "killed after hooks.timeout 10s", DurationSeconds: 10},
		{Name: "/bin/true", Phase: "post_step", Result: "skipped", Error: "skipped: an earlier hook failed and the policy is abort"},
	}
	if diff := cmp.Diff(want, rep.AuditHooks()); diff != "" {
		t.Errorf("hook runs (-want +got)\n%s", diff)
	}
	for kind, phase := range map[Kind]string{PreStep: "pre_step", ExternalStep: "external_step"} {
		got := Report{Event: Event{Kind: kind}, Results: []Result{{Hook: "exec", Name: "/x", Outcome: DryRun}}}.AuditHooks()
		if len(got) != 1 || got[0].Phase != phase || got[0].Result != "dry-run" {
			t.Errorf("%v: %+v", kind, got)
		}
	}
	// The journal's line keeps them (a step entry, as the daemon and
	// ntptool step write it).
	e := audit.StepEntry(utc("2026-12-01T10:00:00Z"), -time.Hour, "ntptool step --by -1h", nil, want[:1], true)
	b, err := json.Marshal(e)
	if err != nil || !strings.Contains(string(b), `"hooks":[{"name":"dhclient[500]","phase":"post_step","result":"ok","duration_seconds":0.15}]`) {
		t.Errorf("entry %s (%v)", b, err)
	}
	if got := (Report{Event: Event{Kind: PreStep}}).AuditHooks(); got == nil || len(got) != 0 {
		t.Errorf("no results: %#v, want an empty list", got)
	}
}
