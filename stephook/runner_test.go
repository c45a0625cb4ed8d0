package stephook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ntptool/ntptool/config"
)

const (
	leaseFile4 = "/var/lib/dhcp/dh.leases"
	leaseFile6 = "/var/lib/dhcp/dh6.leases"
)

func lease4Text(renew, expire string) string {
	return fmt.Sprintf("lease {\n  interface \"eth0\";\n  fixed-address 192.0.2.10;\n  option subnet-mask 255.255.255.0;\n"+
		"  option dhcp-lease-time 120;\n  renew %s;\n  rebind %s;\n  expire %s;\n}\n", renew, expire, expire)
}

func lease6Text(starts int) string {
	return fmt.Sprintf("lease6 {\n  interface \"eth0\";\n  ia-na 4e:dc:46:79 {\n    starts %d;\n    renew 60;\n    rebind 105;\n"+
		"    iaaddr 2001:db8::1ca {\n      starts %d;\n      preferred-life 90;\n      max-life 120;\n    }\n  }\n}\n", starts, starts)
}

// hooksConfig is the default [hooks] with a short timeout.
func hooksConfig() config.Hooks {
	h := config.Default().Hooks
	h.Timeout = config.Duration{Duration: 200 * time.Millisecond}
	return h
}

func newTestRunner(t *testing.T, h config.Hooks, f *fakeSystem, logs *bytes.Buffer) *Runner {
	t.Helper()
	var w bytes.Buffer
	if logs == nil {
		logs = &w
	}
	r, err := New(h, Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), sys: f})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// setups are fake hosts with one DHCP client each.
var setups = map[ClientKind]func(f *fakeSystem){
	UDHCPC: func(f *fakeSystem) {
		f.as = []Addr{dynAddr("eth0", "192.0.2.10/24", 100*time.Second)}
		f.procs = []Process{{PID: 300, Comm: "udhcpc", Argv: []string{"udhcpc", "-f", "-i", "eth0", "-p", "/run/udhcpc.pid"}}}
		f.onSignal = func(f *fakeSystem, pid int, sig syscall.Signal) error {
			if pid == 300 && sig == syscall.SIGUSR1 {
				f.setValid("192.0.2.10/24", 120*time.Second)
			}
			return nil
		}
	},
	DHCPCD: func(f *fakeSystem) {
		f.as = []Addr{dynAddr("eth0", "192.0.2.10/24", 100*time.Second)}
		f.files["/run/dhcpcd/eth0-4.pid"] = []byte("400\n")
		f.procs = []Process{
			{PID: 400, Comm: "dhcpcd", Exe: "/usr/sbin/dhcpcd", Argv: []string{"dhcpcd: eth0 [ip4]"}},
			{PID: 401, PPID: 400, Comm: "dhcpcd", Argv: []string{"dhcpcd: [privileged proxy] eth0 [ip4]"}},
		}
		f.onRun = func(f *fakeSystem, argv []string) error {
			f.setValid("192.0.2.10/24", 120*time.Second)
			return nil
		}
	},
	DHClient: func(f *fakeSystem) {
		f.as = []Addr{dynAddr("eth0", "192.0.2.10/24", 100*time.Second)}
		f.files[leaseFile4] = []byte(lease4Text("2 2026/12/01 09:00:40", "2 2026/12/01 09:01:40"))
		f.procs = []Process{{PID: 500, Comm: "dhclient", Exe: "/usr/sbin/dhclient", Env: []string{"A=1"},
			Argv: []string{"dhclient", "-4", "-v", "-pf", "/run/dh.pid", "-lf", leaseFile4, "eth0"}}}
		f.onSpawn = func(f *fakeSystem, argv []string) error {
			// The restarted dhclient gets a new lease; its script fails to
			// re-add the address, so valid_lft stays.
			f.files[leaseFile4] = append(f.files[leaseFile4], lease4Text("2 2026/12/01 09:01:00", "2 2026/12/01 09:02:00")...)
			return nil
		}
	},
	Networkd: func(f *fakeSystem) {
		f.as = []Addr{dynAddr("eth0", "192.0.2.10/24", 100*time.Second)}
		f.files["/run/systemd/netif/leases/2"] = []byte("ADDRESS=192.0.2.10\n")
		f.procs = []Process{{PID: 600, Comm: "systemd-network", Argv: []string{"/lib/systemd/systemd-networkd"}}}
		f.renewTo = 120 * time.Second
	},
	NetworkManager: func(f *fakeSystem) {
		f.as = []Addr{dynAddr("eth0", "192.0.2.10/24", 100*time.Second)}
		f.procs = []Process{
			{PID: 700, Comm: "NetworkManager", Argv: []string{"/usr/sbin/NetworkManager", "--no-daemon"}},
			// Its dhclient backend is NetworkManager's to renew, not ours.
			{PID: 701, PPID: 700, Comm: "dhclient", Argv: []string{"/sbin/dhclient", "-d", "-lf", "/var/lib/NetworkManager/dhclient-x-eth0.lease", "eth0"}},
		}
		f.renewTo = 120 * time.Second
	},
}

func TestRenewers(t *testing.T) {
	v6 := func(f *fakeSystem) {
		f.as = []Addr{dynAddr("eth0", "2001:db8::1ca/128", 100*time.Second),
			dynAddr("eth0", "2001:db8::5054:ff:fe12:3456/64", 3000*time.Second)} // SLAAC: left alone
		f.files[leaseFile6] = []byte("default-duid \"\\000\\001\";\n" + lease6Text(1796115600))
		f.procs = []Process{{PID: 800, Comm: "dhclient", Exe: "/usr/sbin/dhclient",
			Argv: []string{"dhclient", "-6", "-pf", "/run/dh6.pid", "-lf", leaseFile6, "eth0"}}}
		f.onSpawn = func(f *fakeSystem, argv []string) error {
			if bytes.Contains(f.files[leaseFile6], []byte("lease6")) || !bytes.Contains(f.files[leaseFile6], []byte("default-duid")) {
				return errors.New("the old lease6 should be gone and the DUID kept")
			}
			f.files[leaseFile6] = append(f.files[leaseFile6], lease6Text(1796115640)...)
			return nil
		}
	}
	for _, tt := range []struct {
		name      string
		setup     func(f *fakeSystem)
		wantCalls []string
		wantAfter time.Duration
	}{
		{"udhcpc", setups[UDHCPC], []string{"signal user defined signal 1"}, 120 * time.Second},
		{"dhcpcd", setups[DHCPCD], []string{"run /usr/sbin/dhcpcd -4 -N eth0"}, 120 * time.Second},
		{"dhclient", setups[DHClient], []string{"signal terminated",
			"spawn /usr/sbin/dhclient -4 -v -pf /run/dh.pid -lf /var/lib/dhcp/dh.leases eth0",
			"lifetimes 192.0.2.10/24 2m0s 2m0s"}, 120 * time.Second},
		{"dhclient -6", v6, []string{"signal terminated", "replace " + leaseFile6,
			"spawn /usr/sbin/dhclient -6 -pf /run/dh6.pid -lf /var/lib/dhcp/dh6.leases eth0",
			"lifetimes 2001:db8::1ca/128 2m0s 1m30s"}, 120 * time.Second},
		{"networkd", setups[Networkd], []string{"networkd RenewLink"}, 120 * time.Second},
		{"networkmanager", setups[NetworkManager], []string{"nm Reapply /org/freedesktop/NetworkManager/Devices/2"}, 120 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			tt.setup(f)
			r := newTestRunner(t, hooksConfig(), f, nil)
			results := r.Renew(context.Background(), RenewRequest{})
			if len(results) != 1 {
				t.Fatalf("want 1 result, got %+v", results)
			}
			res := results[0]
			if res.Outcome != OK || res.Err != nil || res.Action == "" || !slices.Equal(res.Interfaces, []string{"eth0"}) {
				t.Errorf("result %+v", res)
			}
			if diff := cmp.Diff(tt.wantCalls, f.calls); diff != "" {
				t.Errorf("calls (-want +got)\n%s", diff)
			}
			if len(res.Before) != 1 || res.Before[0].Valid != 100*time.Second || len(res.After) != 1 || res.After[0].Valid != tt.wantAfter {
				t.Errorf("before %+v after %+v, want 1 address 100 s -> %v", res.Before, res.After, tt.wantAfter)
			}

			// A dry run says the same and does nothing.
			f.calls = nil
			dry := r.Renew(context.Background(), RenewRequest{DryRun: true})
			if len(dry) != 1 || dry[0].Outcome != DryRun || dry[0].Action == "" || len(f.calls) != 0 {
				t.Errorf("dry run: %+v, calls %q", dry, f.calls)
			}
		})
	}
}

// TestUDHCPCAlreadyRenewing: a udhcpc that holds a DHCP socket is in the
// middle of a renewal; a SIGUSR1 then would make it drop the address and
// start over, so the renewer sends none and awaits that renewal.
func TestUDHCPCAlreadyRenewing(t *testing.T) {
	for _, tt := range []struct {
		name     string
		answered bool // the renewal under way gets its DHCPACK
		want     Outcome
	}{
		{"answered", true, OK},
		{"never answered", false, TimedOut},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			setups[UDHCPC](f)
			f.busy = map[int]bool{300: true}
			f.onSleep = func(f *fakeSystem) {
				if tt.answered {
					f.setValid("192.0.2.10/24", 120*time.Second)
					f.busy[300] = false
				}
			}
			res := newTestRunner(t, hooksConfig(), f, nil).Renew(context.Background(), RenewRequest{})
			if len(res) != 1 || res[0].Outcome != tt.want || !strings.Contains(res[0].Action, "already renewing") {
				t.Fatalf("results %+v; want %v, the renewal under way awaited", res, tt.want)
			}
			if len(f.calls) != 0 {
				t.Errorf("calls %q; want none (no SIGUSR1 during a renewal)", f.calls)
			}
		})
	}
}

// TestDHClientRestartFails: a restarted dhclient that exits without a new
// lease is reported, and the address's lifetimes are not touched.
func TestDHClientRestartFails(t *testing.T) {
	f := newFake()
	setups[DHClient](f)
	f.onSpawn = func(f *fakeSystem, argv []string) error {
		f.dead[f.nextPID+1] = true // it exits at once, no lease
		return nil
	}
	f.advance, f.exitAtOnce = true, true
	h := hooksConfig()
	h.Timeout.Duration = 5 * time.Second
	res := newTestRunner(t, h, f, nil).Renew(context.Background(), RenewRequest{})
	if len(res) != 1 || res[0].Outcome != Failed || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "exited without a new lease") {
		t.Fatalf("results %+v", res)
	}
	if slices.ContainsFunc(f.calls, func(c string) bool { return strings.HasPrefix(c, "lifetimes") }) {
		t.Errorf("lifetimes set without a new lease: %q", f.calls)
	}
}

func TestRenewInterfaces(t *testing.T) {
	f := newFake()
	setups[UDHCPC](f)
	r := newTestRunner(t, hooksConfig(), f, nil)
	got := r.Renew(context.Background(), RenewRequest{Interfaces: []string{"eth0", "eth9"}})
	if len(got) != 2 || got[0].Outcome != OK || got[1].Outcome != Skipped || got[1].Err == nil || got[1].Interfaces[0] != "eth9" {
		t.Errorf("got %+v", got)
	}
	h := hooksConfig()
	h.Renewers.UDHCPC = false
	if got := newTestRunner(t, h, f, nil).Renew(context.Background(), RenewRequest{}); len(got) != 0 {
		t.Errorf("udhcpc renewer switched off, got %+v", got)
	}
	h = hooksConfig()
	h.DHCPRenew = "dhcpcd"
	if got := newTestRunner(t, h, f, nil).Renew(context.Background(), RenewRequest{}); len(got) != 0 {
		t.Errorf("dhcp_renew = dhcpcd, got %+v", got)
	}
}

// script writes an executable shell script into dir.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunPolicy(t *testing.T) {
	dir := t.TempDir()
	ok := []string{script(t, dir, "ok", "echo fine")}
	fail := []string{script(t, dir, "fail", "echo broken >&2; exit 3")}
	slow := []string{script(t, dir, "slow", "sleep 10")}
	failing := func(f *fakeSystem) { // dhclient whose restart fails
		setups[DHClient](f)
		f.onSpawn = func(*fakeSystem, []string) error { return errors.New("exec format error") }
	}
	type want struct {
		verdict  Verdict
		outcomes []Outcome
	}
	for _, tt := range []struct {
		name   string
		kind   Kind
		step   time.Duration
		policy string
		client func(f *fakeSystem)
		hooks  [][]string
		want   want
	}{
		// auto: a failed dhclient renewal aborts a backward step beyond
		// its margin (100 s valid − 40 s to renew = 60 s) only.
		{"auto, dhclient failed, back 1 h", PreStep, -time.Hour, "auto", failing, [][]string{ok}, want{Abort, []Outcome{Failed, Skipped}}},
		{"auto, dhclient failed, back 30 s", PreStep, -30 * time.Second, "auto", failing, [][]string{ok}, want{Proceed, []Outcome{Failed, OK}}},
		{"auto, dhclient failed, forward 1 h", PreStep, time.Hour, "auto", failing, [][]string{ok}, want{Proceed, []Outcome{Failed, OK}}},
		{"auto, hook failed", PreStep, -time.Hour, "auto", setups[UDHCPC], [][]string{fail, ok}, want{Proceed, []Outcome{OK, Failed, OK}}},
		{"proceed, dhclient failed", PreStep, -time.Hour, "proceed", failing, nil, want{Proceed, []Outcome{Failed}}},
		{"abort, hook failed", PreStep, time.Second, "abort", setups[UDHCPC], [][]string{ok, fail, ok}, want{Abort, []Outcome{OK, OK, Failed, Skipped}}},
		{"abort, hook timed out", PreStep, time.Second, "abort", setups[UDHCPC], [][]string{slow, ok}, want{Abort, []Outcome{OK, TimedOut, Skipped}}},
		{"abort, all fine", PreStep, time.Second, "abort", setups[UDHCPC], [][]string{ok}, want{Proceed, []Outcome{OK, OK}}},
		// hold decides as abort does; the report tells the owner to hold.
		{"hold, hook failed", PreStep, time.Second, "hold", setups[UDHCPC], [][]string{ok, fail, ok}, want{Abort, []Outcome{OK, OK, Failed, Skipped}}},
		{"hold, hook timed out", PreStep, -time.Hour, "hold", setups[UDHCPC], [][]string{slow}, want{Abort, []Outcome{OK, TimedOut}}},
		{"hold, dhclient failed, forward", PreStep, time.Hour, "hold", failing, [][]string{ok}, want{Abort, []Outcome{Failed, Skipped}}},
		{"hold, all fine", PreStep, -time.Hour, "hold", setups[UDHCPC], [][]string{ok}, want{Proceed, []Outcome{OK, OK}}},
		{"post-step abort", PostStep, time.Second, "abort", setups[UDHCPC], [][]string{fail, ok}, want{Abort, []Outcome{OK, Failed, Skipped}}},
		{"post-step proceed", PostStep, time.Second, "proceed", setups[UDHCPC], [][]string{fail, ok}, want{Proceed, []Outcome{OK, Failed, OK}}},
		{"external-step abort", ExternalStep, time.Second, "abort", setups[UDHCPC], [][]string{fail, ok}, want{Abort, []Outcome{OK, Failed, Skipped}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			tt.client(f)
			h := hooksConfig()
			switch tt.kind {
			case PreStep:
				h.OnFailure, h.PreStep = tt.policy, tt.hooks
			case PostStep:
				h.PostStepOnFailure, h.PostStep = tt.policy, tt.hooks
			case ExternalStep:
				h.ExternalStepOnFailure, h.ExternalStep = tt.policy, tt.hooks
			}
			r := newTestRunner(t, h, f, nil)
			rep := r.Run(context.Background(), Event{Kind: tt.kind, Step: tt.step, Reason: "test"})
			var got []Outcome
			for _, res := range rep.Results {
				got = append(got, res.Outcome)
			}
			if rep.Verdict != tt.want.verdict || !slices.Equal(got, tt.want.outcomes) {
				t.Errorf("verdict %v outcomes %v, want %v %v (reason %q)", rep.Verdict, got, tt.want.verdict, tt.want.outcomes, rep.Reason)
			}
			if (rep.Verdict == Abort) != (rep.Reason != "") {
				t.Errorf("verdict %v with reason %q", rep.Verdict, rep.Reason)
			}
			if wantHold := tt.policy == "hold" && rep.Verdict == Abort; rep.Hold != wantHold {
				t.Errorf("policy %s, verdict %v: hold %v, want %v", tt.policy, rep.Verdict, rep.Hold, wantHold)
			}
			for _, res := range rep.Results {
				if res.Outcome == TimedOut && (res.Err == nil || !strings.Contains(res.Err.Error(), "hooks.timeout 200ms")) {
					t.Errorf("timed out with error %v", res.Err)
				}
				if res.Outcome == Failed && res.Hook == "exec" && (res.Output != "broken" || res.Err.Error() != "exit status 3") {
					t.Errorf("failed hook: output %q error %v", res.Output, res.Err)
				}
			}
		})
	}
}

func TestExecEnvironment(t *testing.T) {
	dir := t.TempDir()
	// Only the event's variables: the daemon's own environment (CI sets
	// NTPTOOL_PEERS and the like) is inherited and not under test here.
	env := script(t, dir, "env", `env | grep -E '^NTPTOOL_(EVENT|NEW_TIME|OLD_TIME|REASON|STEP_SECONDS)=' | sort; echo "args: $*"`)
	h := hooksConfig()
	h.PostStep = [][]string{{env, "a b", "c"}}
	var logs bytes.Buffer
	f := newFake()
	r := newTestRunner(t, h, f, &logs)
	ev := Event{Kind: PostStep, Step: -3600*time.Second - 250*time.Millisecond,
		Old: utc("2026-12-01T10:00:00Z"), New: utc("2026-12-01T10:00:00Z").Add(-3600*time.Second - 250*time.Millisecond),
		Reason: "ntptool step --by -1h0.25s"}
	rep := r.Run(context.Background(), ev)
	if len(rep.Results) != 1 || rep.Results[0].Outcome != OK || rep.Verdict != Proceed {
		t.Fatalf("report %+v", rep)
	}
	want := strings.Join([]string{
		"NTPTOOL_EVENT=post-step",
		"NTPTOOL_NEW_TIME=2026-12-01T08:59:59.75Z",
		"NTPTOOL_OLD_TIME=2026-12-01T10:00:00Z",
		"NTPTOOL_REASON=ntptool step --by -1h0.25s",
		"NTPTOOL_STEP_SECONDS=-3600.250000000",
		"args: a b c",
	}, "\n")
	if diff := cmp.Diff(want, rep.Results[0].Output); diff != "" {
		t.Errorf("hook output (-want +got)\n%s", diff)
	}
	if !strings.Contains(logs.String(), "NTPTOOL_STEP_SECONDS=-3600.250000000") || !strings.Contains(logs.String(), "event=post-step") {
		t.Errorf("the hook's output is not in the log:\n%s", logs.String())
	}
	if got := (Event{Kind: PreStep, Step: 1500 * time.Millisecond}).Env(); got[1] != "NTPTOOL_STEP_SECONDS=+1.500000000" || got[2] != "NTPTOOL_OLD_TIME=" {
		t.Errorf("env %q", got)
	}
}

// TestVerifyAfterStep: after a post-step renewal that did not renew, the
// address is renewed once more and both are logged at Error level.
func TestVerifyAfterStep(t *testing.T) {
	f := newFake()
	setups[UDHCPC](f)
	f.setValid("192.0.2.10/24", 20*time.Second) // below the 30 s floor
	signals := 0
	f.onSignal = func(f *fakeSystem, pid int, sig syscall.Signal) error {
		signals++
		return nil // udhcpc gets no answer: nothing changes
	}
	var logs bytes.Buffer
	r := newTestRunner(t, hooksConfig(), f, &logs)
	rep := r.Run(context.Background(), Event{Kind: PostStep, Step: -time.Hour})
	var hooks []string
	for _, res := range rep.Results {
		hooks = append(hooks, res.Hook+":"+string(res.Outcome))
	}
	if !slices.Equal(hooks, []string{"renew:timeout", "verify:failed"}) || signals != 2 {
		t.Errorf("results %v after %d signals, want a timed-out renewal then a failed verification after 2", hooks, signals)
	}
	for _, want := range []string{"level=ERROR msg=\"address lifetime not sane after the step: renewing again\"", "level=ERROR msg=\"address will expire"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	// A renewal that works passes the check: no verify result.
	f2 := newFake()
	setups[UDHCPC](f2)
	rep = newTestRunner(t, hooksConfig(), f2, nil).Run(context.Background(), Event{Kind: PostStep, Step: -time.Hour})
	if len(rep.Results) != 1 || rep.Results[0].Outcome != OK {
		t.Errorf("results %+v", rep.Results)
	}
}

func TestNewRejects(t *testing.T) {
	for _, mod := range []func(h *config.Hooks){
		func(h *config.Hooks) { h.Timeout.Duration = 0 },
		func(h *config.Hooks) { h.DHCPRenew = "pump" },
		func(h *config.Hooks) { h.OnFailure = "later" },
		func(h *config.Hooks) { h.PostStepOnFailure = "hold" }, // the step is made: nothing to hold
		func(h *config.Hooks) { h.ExternalStepOnFailure = "auto" },
		func(h *config.Hooks) { h.PostStep = [][]string{{}} },
	} {
		h := config.Default().Hooks
		mod(&h)
		if _, err := New(h, Options{}); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: error %v, want ErrConfig", h, err)
		}
	}
}

func TestPolicyAliases(t *testing.T) {
	for alias, want := range map[string]string{"step": "proceed", "slew": "abort", "auto": "auto", "hold": "hold"} {
		h := config.Default().Hooks
		h.OnFailure = alias
		r, err := New(h, Options{})
		if err != nil {
			t.Fatalf("on_failure %q: %v", alias, err)
		}
		if got := r.policy(PreStep); got != want {
			t.Errorf("on_failure %q: policy %q, want %q", alias, got, want)
		}
	}
}

// TestRunsOneAtATime: a run that comes while another is in progress (the
// daemon's post-step hooks still renewing when a step by someone else is
// detected) waits for it: two renewals at once would restart the same
// DHCP client twice. The first event's hook holds until a release file
// appears, which only the second event's hook creates, or 2 s pass.
func TestRunsOneAtATime(t *testing.T) {
	dir := t.TempDir()
	logPath, release := filepath.Join(dir, "log"), filepath.Join(dir, "release")
	hook := script(t, dir, "hook", `echo "start $NTPTOOL_EVENT" >> `+logPath+`
if [ "$NTPTOOL_EVENT" = external-step ]; then touch `+release+`; fi
i=0
while [ "$NTPTOOL_EVENT" = post-step ] && [ ! -e `+release+` ] && [ $i -lt 100 ]; do sleep 0.02; i=$((i+1)); done
echo "end $NTPTOOL_EVENT" >> `+logPath)
	h := hooksConfig()
	h.Timeout = config.Duration{Duration: 10 * time.Second}
	h.PostStep, h.ExternalStep = [][]string{{hook}}, [][]string{{hook}}
	r := newTestRunner(t, h, newFake(), nil)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.Run(context.Background(), Event{Kind: PostStep, Step: time.Second}) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, _ := os.ReadFile(logPath); strings.Contains(string(b), "start post-step") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the post-step hook did not start within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Run(context.Background(), Event{Kind: ExternalStep, Step: -time.Hour})
	wg.Wait()
	b, _ := os.ReadFile(logPath)
	want := "start post-step\nend post-step\nstart external-step\nend external-step\n"
	if string(b) != want {
		t.Errorf("hook runs overlapped:\n%s\nwant:\n%s", b, want)
	}
	// A cancelled wait does not run the hooks, and says so.
	r.turn <- struct{}{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if rep := r.Run(ctx, Event{Kind: PreStep, Step: time.Second}); rep.Verdict != Abort || len(rep.Results) != 0 {
		t.Errorf("cancelled wait: %+v", rep)
	}
	<-r.turn
}

// TestDHCPCDStalePidFiles: a pid file left by a killed dhcpcd whose PID now
// belongs to a running dhcpcd's helper, or to a dhcpcd of another
// interface, names no client: each daemon is renewed once, for its own
// interface.
func TestDHCPCDStalePidFiles(t *testing.T) {
	f := newFake()
	setups[DHCPCD](f)
	f.as = append(f.as, dynAddr("eth1", "198.51.100.7/24", 100*time.Second))
	f.procs = append(f.procs, Process{PID: 410, Comm: "dhcpcd", Exe: "/usr/sbin/dhcpcd", Argv: []string{"dhcpcd: eth1 [ip4]"}})
	f.files["/run/dhcpcd/eth1-4.pid"] = []byte("410\n")
	f.files["/run/dhcpcd/gone-6.pid"] = []byte("401\n") // eth0's privileged proxy now
	f.files["/run/dhcpcd/old-4.pid"] = []byte("410\n")  // eth1's daemon now
	f.onRun = func(f *fakeSystem, argv []string) error {
		f.setValid(map[string]string{"eth0": "192.0.2.10/24", "eth1": "198.51.100.7/24"}[argv[len(argv)-1]], 120*time.Second)
		return nil
	}
	res := newTestRunner(t, hooksConfig(), f, nil).Renew(context.Background(), RenewRequest{})
	var got []string
	for _, r := range res {
		got = append(got, fmt.Sprint(r.Name, " ", r.Interfaces, " ", r.Outcome))
	}
	want := []string{"dhcpcd[400] [eth0] ok", "dhcpcd[410] [eth1] ok"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("renewals (-want +got)\n%s", diff)
	}
}
