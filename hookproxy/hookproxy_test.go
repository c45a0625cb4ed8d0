package hookproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/stephook"
)

// The test binary is also the helper: the tests start it with this
// variable set.
const helperEnv = "HOOKPROXY_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		if err := Main(log); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func TestParseEvent(t *testing.T) {
	for _, tt := range []struct {
		name    string
		req     Request
		want    stephook.Event
		wantErr string
	}{
		{"pre-step", Request{Kind: "pre-step", StepNS: -3e9, Old: "2026-11-25T10:00:00Z", New: "2026-11-25T09:59:57Z", Reason: "offset +3 s"},
			stephook.Event{Kind: stephook.PreStep, Step: -3 * time.Second, Old: t0, New: t0.Add(-3 * time.Second), Reason: "offset +3 s"}, ""},
		{"external, times unknown", Request{Kind: "external-step", StepNS: 1}, stephook.Event{Kind: stephook.ExternalStep, Step: 1}, ""},
		{"unknown kind", Request{Kind: "reboot"}, stephook.Event{}, `unknown event kind "reboot"`},
		{"bad time", Request{Kind: "post-step", Old: "yesterday"}, stephook.Event{}, `bad time "yesterday"`},
		{"newline in the reason", Request{Kind: "post-step", Reason: "a\nNTPTOOL_EVENT=x"}, stephook.Event{}, "reason"},
		{"long reason", Request{Kind: "post-step", Reason: strings.Repeat("x", 513)}, stephook.Event{}, "reason"},
		{"invalid UTF-8", Request{Kind: "post-step", Reason: "\xff"}, stephook.Event{}, "reason"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEvent(tt.req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// fakeRunner records the events and answers a fixed report.
type fakeRunner struct {
	got []string
	rep stephook.Report
}

func (f *fakeRunner) Run(_ context.Context, ev stephook.Event) stephook.Report {
	f.got = append(f.got, "run "+ev.Kind.String())
	r := f.rep
	r.Event = ev
	return r
}

func (f *fakeRunner) DryRun(_ context.Context, ev stephook.Event) stephook.Report {
	f.got = append(f.got, "dry "+ev.Kind.String())
	return stephook.Report{Event: ev}
}

// Serve answers each request in order, refuses an invalid event without
// ending, and ends cleanly when the daemon closes its end; the report
// survives the wire.
func TestServe(t *testing.T) {
	rep := stephook.Report{Verdict: stephook.Abort, Reason: "renewal failed", Duration: 1500 * time.Millisecond, Results: []stephook.Result{
		{Hook: "renew", Name: "dhclient[42]", Client: stephook.DHClient, Interfaces: []string{"eth0"}, Action: "restart", Outcome: stephook.Failed,
			Err: errors.New("no new lease"), Duration: time.Second},
		{Hook: "exec", Name: "/usr/local/bin/notify", Outcome: stephook.OK, Duration: 20 * time.Millisecond, Output: "sent\n"},
	}}
	fake := &fakeRunner{rep: rep}
	ours, theirs := net.Pipe()
	done := make(chan error, 1)
	var gotHooks config.Hooks
	go func() {
		done <- Serve(theirs, ServeOptions{newRunner: func(h config.Hooks, _ *slog.Logger) (Runner, error) { gotHooks = h; return fake, nil }})
	}()
	hooks := config.Default().Hooks
	hooks.PreStep = [][]string{{"/bin/true"}}
	r := bufio.NewReader(ours)
	send := func(v any) {
		t.Helper()
		if err := writeLine(ours, v); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() Response {
		t.Helper()
		line, err := readLine(r)
		if err != nil {
			t.Fatal(err)
		}
		var resp Response
		if err := json.Unmarshal(line, &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	send(Hello{Hooks: hooks})
	ev := stephook.Event{Kind: stephook.PreStep, Step: 2 * time.Second, Old: t0, New: t0.Add(2 * time.Second), Reason: "offset -2 s"}
	send(Request{Seq: 1, Kind: "pre-step", StepNS: int64(ev.Step), Old: rfc3339(ev.Old), New: rfc3339(ev.New), Reason: ev.Reason})
	got := toReport(ev, recv())
	want := rep
	want.Event = ev
	errText := cmp.Comparer(func(a, b error) bool { return fmt.Sprint(a) == fmt.Sprint(b) })
	if diff := cmp.Diff(want, got, errText, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("report across the wire (-want +got)\n%s", diff)
	}
	send(Request{Seq: 2, Kind: "pre-step", Reason: "bad\x1b[2J"})
	if resp := recv(); resp.Seq != 2 || !strings.Contains(resp.Error, "reason") {
		t.Errorf("invalid event answered %+v, want refused", resp)
	}
	send(Request{Seq: 3, Kind: "post-step", DryRun: true})
	if resp := recv(); resp.Seq != 3 || resp.Error != "" {
		t.Errorf("dry run answered %+v", resp)
	}
	ours.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve after close = %v, want nil", err)
	}
	if diff := cmp.Diff([]string{"run pre-step", "dry post-step"}, fake.got); diff != "" {
		t.Errorf("events run (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff(hooks, gotHooks); diff != "" {
		t.Errorf("configuration across the wire (-want +got)\n%s", diff)
	}
}

// Garbage ends Serve with an error, never a panic.
func TestServeBadInput(t *testing.T) {
	for _, in := range []string{"", "not json\n", `{"hooks":{"timeout":"x"}}` + "\n", `{"hooks":{}}` + "\n{\n",
		`{"hooks":{}}` + "\n" + strings.Repeat("x", MaxLineBytes+10)} {
		err := Serve(struct {
			*strings.Reader
			nopWriter
		}{strings.NewReader(in), nopWriter{}}, ServeOptions{newRunner: func(config.Hooks, *slog.Logger) (Runner, error) { return &fakeRunner{}, nil }})
		if err == nil {
			t.Errorf("Serve(%.40q) = nil, want an error", in)
		}
	}
}

type nopWriter struct{}

func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }

func FuzzServe(f *testing.F) {
	f.Add([]byte(`{"hooks":{}}` + "\n" + `{"seq":1,"kind":"pre-step","step_ns":5,"reason":"x"}` + "\n"))
	f.Add([]byte(`{"hooks":{}}` + "\n" + `{"seq":1,"kind":"post-step","old":"2026-11-25T10:00:00Z","dry_run":true}` + "\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		_ = Serve(struct {
			*strings.Reader
			nopWriter
		}{strings.NewReader(string(in)), nopWriter{}}, ServeOptions{newRunner: func(config.Hooks, *slog.Logger) (Runner, error) { return &fakeRunner{}, nil }})
	})
}

// startHelper starts the test binary as the helper with hooks.
func startHelper(t *testing.T, hooks config.Hooks) *Client {
	t.Helper()
	env := append(HelperEnv(os.Environ()), helperEnv+"=1")
	c, err := Start([]string{os.Args[0]}, hooks, Options{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The real thing: a helper process runs the configured exec hooks with
// the event's variables, as the user the daemon was when it started it
// (root in CI), without CAP_SYS_TIME in any set; a failing pre-step hook
// under "abort" says abort; a dry run runs nothing; and a helper that is
// gone makes a pre-step abort, so that no step goes unprotected.
func TestHelperProcess(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "hook.out")
	hooks := config.Default().Hooks
	hooks.DHCPRenew = "off"
	hooks.OnFailure = "abort"
	hooks.Timeout = config.Duration{Duration: 5 * time.Second}
	hooks.PostStep = [][]string{{"/bin/sh", "-c", `echo "$NTPTOOL_EVENT $NTPTOOL_STEP_SECONDS $(id -u)" > ` + out}}
	hooks.PreStep = [][]string{{"/bin/sh", "-c", "exit 3"}}
	c := startHelper(t, hooks)
	ctx := context.Background()

	rep := c.Run(ctx, stephook.Event{Kind: stephook.PostStep, Step: -1500 * time.Millisecond, Old: t0, New: t0.Add(-1500 * time.Millisecond), Reason: "test"})
	if rep.Verdict != stephook.Proceed || len(rep.Results) != 1 || rep.Results[0].Outcome != stephook.OK {
		t.Fatalf("post-step report %+v, want one hook run ok", rep)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("post-step -1.500000000 %d\n", os.Getuid()); string(data) != want {
		t.Errorf("the hook wrote %q, want %q", data, want)
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	const sysTime = 25
	for line := range strings.SplitSeq(string(st), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(k, "Cap") {
			continue
		}
		bits, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		if bits&(1<<sysTime) != 0 {
			t.Errorf("helper %s = %s: holds cap_sys_time", k, strings.TrimSpace(v))
		}
	}

	rep = c.Run(ctx, stephook.Event{Kind: stephook.PreStep, Step: time.Second, Reason: "test"})
	if rep.Verdict != stephook.Abort || len(rep.Results) != 1 || rep.Results[0].Outcome != stephook.Failed || rep.Results[0].Err == nil {
		t.Errorf("failing pre-step hook: report %+v, want abort with the failure", rep)
	}
	os.Remove(out)
	rep = c.DryRun(ctx, stephook.Event{Kind: stephook.PostStep, Step: time.Second})
	if len(rep.Results) != 1 || rep.Results[0].Outcome != stephook.DryRun {
		t.Errorf("dry run report %+v", rep)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("the dry run ran the hook")
	}

	c.cmd.Process.Kill()
	<-c.done
	rep = c.Run(ctx, stephook.Event{Kind: stephook.PreStep, Step: time.Second})
	if rep.Verdict != stephook.Abort || len(rep.Results) != 1 || !errors.Is(rep.Results[0].Err, ErrHelper) {
		t.Errorf("helper gone: report %+v, want abort with ErrHelper", rep)
	}
}

// A helper closed while idle exits at once, successfully.
func TestHelperClose(t *testing.T) {
	hooks := config.Default().Hooks
	hooks.DHCPRenew = "off"
	c := startHelper(t, hooks)
	if err := c.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if !c.cmd.ProcessState.Success() {
		t.Errorf("helper exited %v", c.cmd.ProcessState)
	}
}
