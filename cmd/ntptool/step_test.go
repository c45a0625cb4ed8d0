package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/audit"
	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/e2e/guard"
	"github.com/ntptool/ntptool/internal/sim"
)

// simKernel is a simulated Linux clock for the commands, so that the real
// step path runs in-process without the host's clock: clock.Linux is
// never made in these tests (and a test binary that reached it would be
// refused by the e2e guard, TestRealKernelRefusedInTests).
type simKernel struct {
	*sim.Kernel
	changes int
}

func newSimKernel(t *testing.T, offset time.Duration) *simKernel {
	t.Helper()
	k, err := sim.NewKernel(sim.ClockConfig{InitialOffset: offset, MonotonicStart: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &simKernel{Kernel: k}
}

func (k *simKernel) Adjtimex(tx *unix.Timex) (int, error) {
	if tx.Modes != 0 {
		k.changes++
	}
	return k.Kernel.Adjtimex(tx)
}

// wait advances the simulated clock until its monotonic time moved by d.
func (k *simKernel) wait(_ context.Context, d time.Duration) error {
	rate := 1 + k.FreqErrorPPB()/1e9
	k.AdvanceTo(k.T() + max(time.Duration(float64(d)/rate), time.Nanosecond))
	return nil
}

// simHost is a hostClock over k that may set the time; no daemon runs.
func simHost(k *simKernel) hostClock {
	return hostClock{
		kernel:        func() (clock.Kernel, error) { return k, nil },
		readOnly:      clock.NewReadOnly(k),
		canSetTime:    func() bool { return true },
		daemonRunning: func(context.Context, string) bool { return false },
		wait:          k.wait,
	}
}

// runHost runs a command line whose step and sync use host.
func runHost(host hostClock, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	root := newRootCmd(&out, &errb)
	for _, c := range root.Commands() {
		if c.Name() == "step" || c.Name() == "sync" {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(newStepCmd(host), newSyncCmd(host))
	code = execute(context.Background(), root, args, &errb)
	return code, out.String(), errb.String()
}

// hookLab is a configuration whose exec hooks write their NTPTOOL_*
// environment to DIR/EVENT.env, with no DHCP renewer (the host's clients
// are not touched), an audit journal in DIR and no control socket.
type hookLab struct {
	dir, conf, journal string
}

func newHookLab(t *testing.T, extra string) hookLab {
	t.Helper()
	dir := t.TempDir()
	env := filepath.Join(dir, "env.sh")
	if err := os.WriteFile(env, []byte("#!/bin/sh\nenv | grep '^NTPTOOL_' | sort > \"$1\"\n[ -z \"$2\" ] || exit \"$2\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	l := hookLab{dir: dir, conf: filepath.Join(dir, "ntptool.toml"), journal: filepath.Join(dir, "audit.jsonl")}
	text := fmt.Sprintf(`[hooks]
dhcp_renew = "off"
timeout = "5s"
pre_step = [[%q, %q]]
post_step = [[%q, %q]]
%s
[audit]
journal = %q

[control]
socket = ""
`, env, filepath.Join(dir, "pre-step.env"), env, filepath.Join(dir, "post-step.env"), extra, l.journal)
	if err := os.WriteFile(l.conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return l
}

// env returns what an event's hook saw, "" if it did not run.
func (l hookLab) env(event string) string {
	b, _ := os.ReadFile(filepath.Join(l.dir, event+".env"))
	return string(b)
}

// entries reads the journal's entries after verifying its chain.
func (l hookLab) entries(t *testing.T) []audit.Entry {
	t.Helper()
	if _, err := os.Stat(l.journal); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := audit.VerifyFiles([]string{l.journal}, audit.VerifyOptions{}); err != nil {
		t.Fatalf("journal: %v", err)
	}
	var out []audit.Entry
	err := audit.Scan([]string{l.journal}, func(r audit.Record) error {
		if r.Parsed.Entry != nil {
			out = append(out, *r.Parsed.Entry)
		}
		return r.Err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStepCommand runs ntptool step in-process on a simulated kernel,
// with real exec hooks and a real audit journal.
func TestStepCommand(t *testing.T) {
	t.Run("by -1h", func(t *testing.T) {
		k := newSimKernel(t, 0)
		lab := newHookLab(t, "")
		code, out, stderr := runHost(simHost(k), "step", "--by", "-1h", "--config", lab.conf)
		if code != exitOK {
			t.Fatalf("exit %d: %s%s", code, out, stderr)
		}
		if k.Offset() != -3600 {
			t.Errorf("the clock is %v s off, want exactly -3600", k.Offset())
		}
		wantEnv := func(event string) string {
			return strings.Join([]string{"NTPTOOL_EVENT=" + event, "NTPTOOL_NEW_TIME=2024-12-31T23:00:00Z", "NTPTOOL_OLD_TIME=2025-01-01T00:00:00Z",
				"NTPTOOL_REASON=ntptool step --by -1h", "NTPTOOL_STEP_SECONDS=-3600.000000000"}, "\n") + "\n"
		}
		for _, ev := range []string{"pre-step", "post-step"} {
			if got := lab.env(ev); got != wantEnv(ev) {
				t.Errorf("%s hook saw\n%s\nwant\n%s", ev, got, wantEnv(ev))
			}
		}
		for _, want := range []string{"step: -3600.000000000 s (-1h0m0s), 2025-01-01T00:00:00Z -> 2024-12-31T23:00:00Z",
			"configuration: " + lab.conf, `pre-step hooks (hooks.on_failure = "auto"):`, `post-step hooks (hooks.post_step_on_failure = "proceed"):`,
			"stepped the clock by -3600.000000000 s"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		es := lab.entries(t)
		if len(es) != 1 || es[0].Kind != audit.KindStep || es[0].DeltaSeconds != -3600 || !es[0].Applied || len(es[0].Hooks) != 2 ||
			es[0].Hooks[0].Phase != "pre_step" || es[0].Hooks[1].Phase != "post_step" || es[0].Hooks[1].Result != "ok" ||
			es[0].Old != "2025-01-01T00:00:00Z" || es[0].New != "2024-12-31T23:00:00Z" || es[0].Reason != "ntptool step --by -1h" {
			t.Errorf("journal %+v", es)
		}
	})
	t.Run("to a time", func(t *testing.T) {
		k := newSimKernel(t, 0)
		lab := newHookLab(t, "")
		code, out, stderr := runHost(simHost(k), "step", "--to", "@1900000000.5", "--config", lab.conf)
		if now, _ := k.Now(); code != exitOK || !now.Equal(time.Unix(1900000000, 5e8)) {
			t.Errorf("exit %d, clock %v: %s%s", code, now, out, stderr)
		}
	})
	t.Run("dry run changes nothing", func(t *testing.T) {
		k := newSimKernel(t, 0)
		lab := newHookLab(t, "")
		code, out, stderr := runHost(simHost(k), "step", "--by", "-1h", "--dry-run", "--config", lab.conf)
		if code != exitOK || k.changes != 0 || lab.env("pre-step") != "" || lab.entries(t) != nil {
			t.Fatalf("exit %d, %d clock changes, hooks ran %v: %s%s", code, k.changes, lab.env("pre-step") != "", out, stderr)
		}
		for _, want := range []string{"exec  " + filepath.Join(lab.dir, "env.sh"), "dry-run", "dry run: nothing was changed (the step needs CAP_SYS_TIME: this process has it)"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("no CAP_SYS_TIME: no hook runs", func(t *testing.T) {
		k := newSimKernel(t, 0)
		lab := newHookLab(t, "")
		host := simHost(k)
		host.canSetTime = func() bool { return false }
		code, out, stderr := runHost(host, "step", "--by", "-1h", "--config", lab.conf)
		if code != exitFailure || !strings.Contains(stderr, "need CAP_SYS_TIME") || k.changes != 0 || lab.env("pre-step") != "" {
			t.Errorf("exit %d, %d changes: %s%s", code, k.changes, out, stderr)
		}
	})
	t.Run("the kernel refuses: EPERM", func(t *testing.T) {
		lab := newHookLab(t, "")
		ro := clock.NewReadOnly(newSimKernel(t, 0))
		host := hostClock{kernel: func() (clock.Kernel, error) { return epermKernel{ro}, nil }, readOnly: ro}
		code, out, stderr := runHost(host, "step", "--by", "-1h", "--config", lab.conf)
		if code != exitFailure || !strings.Contains(stderr, "need CAP_SYS_TIME") || !strings.Contains(out, "the clock was not stepped") {
			t.Errorf("exit %d: %s%s", code, out, stderr)
		}
		if es := lab.entries(t); len(es) != 1 || es[0].Applied || !strings.Contains(es[0].Error, "CAP_SYS_TIME") {
			t.Errorf("journal %+v: want the refused step", es)
		}
	})
	t.Run("a failing pre-step hook with abort cancels the step", func(t *testing.T) {
		k := newSimKernel(t, 0)
		lab := newHookLab(t, `on_failure = "abort"`)
		// The pre-step hook exits 1 (its second argument).
		conf, _ := os.ReadFile(lab.conf)
		os.WriteFile(lab.conf, bytes.Replace(conf, []byte(`pre-step.env"]]`), []byte(`pre-step.env", "1"]]`), 1), 0o644)
		code, out, stderr := runHost(simHost(k), "step", "--by", "-1h", "--config", lab.conf)
		if code != exitFailure || k.Offset() != 0 || lab.env("post-step") != "" || !strings.Contains(stderr, "the pre-step hooks cancelled the step") ||
			!strings.Contains(out, "verdict: abort") {
			t.Errorf("exit %d, offset %v: %s%s", code, k.Offset(), out, stderr)
		}
		if es := lab.entries(t); len(es) != 1 || es[0].Applied || len(es[0].Hooks) != 1 || es[0].Hooks[0].Result != "failed" {
			t.Errorf("journal %+v", es)
		}
	})
	t.Run("a failing post-step hook: stepped, exit 3", func(t *testing.T) {
		k := newSimKernel(t, 0)
		lab := newHookLab(t, "")
		conf, _ := os.ReadFile(lab.conf)
		os.WriteFile(lab.conf, bytes.Replace(conf, []byte(`post-step.env"]]`), []byte(`post-step.env", "4"]]`), 1), 0o644)
		code, out, stderr := runHost(simHost(k), "step", "--by", "+24h", "--config", lab.conf)
		if code != exitStepped || k.Offset() != 86400 || !strings.Contains(out, "stepped the clock by +86400.000000000 s") ||
			!strings.Contains(stderr, "exit status 4") {
			t.Errorf("exit %d, offset %v: %s%s", code, k.Offset(), out, stderr)
		}
	})
	t.Run("a running daemon is told about", func(t *testing.T) {
		k := newSimKernel(t, 0)
		lab := newHookLab(t, "")
		host := simHost(k)
		host.daemonRunning = func(context.Context, string) bool { return true }
		code, out, _ := runHost(host, "step", "--by", "-1s", "--config", lab.conf)
		if code != exitOK || !strings.Contains(out, "ntptool run is running") || k.Offset() != -1 {
			t.Errorf("exit %d: %s", code, out)
		}
	})
}

// epermKernel refuses every change, as the kernel does without
// CAP_SYS_TIME.
type epermKernel struct{ clock.Kernel }

func (k epermKernel) Adjtimex(tx *unix.Timex) (int, error) {
	if tx.Modes != 0 {
		return 0, unix.EPERM
	}
	return k.Kernel.Adjtimex(tx)
}

// TestStepUsage runs the real command tree: only forms that stop before
// the clock (usage errors) or only read it (--dry-run).
func TestStepUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"step"}, "need --by DURATION or --to TIME"},
		{[]string{"step", "--by", "-1h", "--to", "@0"}, "--by and --to"},
		{[]string{"step", "--by", "1 hour"}, "is not a duration"},
		{[]string{"step", "--by", "0s"}, "a step of 0 changes nothing"},
		{[]string{"step", "--by", ""}, "empty duration"},
		{[]string{"step", "--by", "1e300"}, "out of range"},
		{[]string{"step", "--to", "tomorrow"}, "is not a time"},
		{[]string{"step", "--to", "2030-06-01T12:00:00"}, "is not a time"}, // no zone
		{[]string{"step", "--to", "1969-12-31T00:00:00Z"}, "before 1970"},
		{[]string{"step", "--to", "@x"}, "@UNIX-SECONDS"},
		{[]string{"step", "--by", "-1h", "extra"}, "flags only"},
		{[]string{"step", "--by", "-1h", "--bogus"}, "unknown flag"},
		{[]string{"step", "--by", "-1h", "--dry-run", "--config", "/nonexistent/ntptool.toml"}, "nonexistent"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, stderr := runArgs(tt.args...)
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q (stdout %q); want %d and %q", code, stderr, out, exitUsage, tt.want)
			}
		})
	}
}

// TestStepDryRunContract: `ntptool step --by -1h --dry-run` prints the
// hooks it would run and exits 0, on this host (it only reads the clock
// and detects the DHCP clients).
func TestStepDryRunContract(t *testing.T) {
	lab := newHookLab(t, "")
	for _, args := range [][]string{
		{"step", "--by", "-1h", "--dry-run"},
		{"step", "--by", "-1h", "--dry-run", "--config", lab.conf},
		{"step", "--to", "2030-06-01T12:00:00Z", "--dry-run", "--config", lab.conf},
	} {
		code, out, stderr := runArgs(args...)
		if code != exitOK || !strings.Contains(out, "pre-step hooks") || !strings.Contains(out, "post-step hooks") || !strings.Contains(out, "dry run: nothing was changed") {
			t.Errorf("%q: exit %d\n%s%s", args, code, out, stderr)
		}
	}
	if lab.env("pre-step") != "" || lab.entries(t) != nil {
		t.Error("a dry run ran a hook or wrote the journal")
	}
	code, out, _ := runArgs("step", "--help")
	for _, want := range []string{"step --by DURATION | --to TIME [--dry-run] [--config FILE]", "ntptool step --by -1h --dry-run",
		"NTPTOOL_STEP_SECONDS", "CAP_SYS_TIME", "Exit status", "3 stepped but", "external"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("help (exit %d) lacks %q", code, want)
		}
	}
}

// TestRealKernelRefusedInTests: the host's kernel clock is refused to a
// test binary outside the e2e guest, so a test that forgot --dry-run
// fails instead of stepping the machine's clock. (No test here runs step
// or sync without --dry-run or --no-clock-control through the real
// command tree: the guard is the second line.)
func TestRealKernelRefusedInTests(t *testing.T) {
	if guard.Check(guard.OS{}) == nil {
		t.Skip("inside the e2e guest VM: the real clock may be changed here")
	}
	k, err := realHostClock().kernel()
	if k != nil || !errors.Is(err, guard.ErrNotGuest) {
		t.Fatalf("kernel %v, error %v: want the guard's refusal", k, err)
	}
}

func TestParseStepDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"-1h", -time.Hour, true}, {"+24h", 24 * time.Hour, true}, {"90s", 90 * time.Second, true},
		{"-1.5s", -1500 * time.Millisecond, true}, {"1h30m", 90 * time.Minute, true}, {"-3600", -time.Hour, true},
		{"0.000000001", time.Nanosecond, true}, {" 5s ", 5 * time.Second, true},
		{"", 0, false}, {"1 hour", 0, false}, {"1d", 0, false}, {"NaN", 0, false}, {"inf", 0, false}, {"1e30", 0, false}, {"--1s", 0, false},
	} {
		got, err := parseStepDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%q: %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseStepTime(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2030-06-01T12:00:00Z", time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC), true},
		{"2030-06-01T14:00:00.25+02:00", time.Date(2030, 6, 1, 12, 0, 0, 25e7, time.UTC), true},
		{"@1900000000", time.Unix(1900000000, 0), true},
		{"@1900000000.000000001", time.Unix(1900000000, 1), true},
		{"@1900000000.5", time.Unix(1900000000, 5e8), true},
		{"@-1.5", time.Unix(-1, -5e8), true},
		{"@", time.Time{}, false}, {"@+5", time.Time{}, false}, {"@1.0000000001", time.Time{}, false}, {"@1.x", time.Time{}, false},
		{"@99999999999999999999", time.Time{}, false}, {"2030-06-01", time.Time{}, false}, {"", time.Time{}, false},
	} {
		got, err := parseStepTime(tt.in)
		if (err == nil) != tt.ok || !got.Equal(tt.want) {
			t.Errorf("%q: %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// FuzzParseStep: the parsers of --by and --to never panic, and what they
// accept is what time.ParseDuration, strconv.ParseFloat and time.Parse say,
// or, for @UNIX-SECONDS, reads back the same from its own formatting.
func FuzzParseStep(f *testing.F) {
	for _, s := range []string{"-1h", "+24h", "-3600", "1e9", "@1900000000.5", "2030-06-01T12:00:00Z", "@-0.1", "9223372036s", "@-5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := parseStepDuration(s); err == nil {
			trimmed := strings.TrimSpace(s)
			if pd, perr := time.ParseDuration(trimmed); perr == nil && pd != d {
				if _, ferr := strconv.ParseFloat(trimmed, 64); ferr != nil {
					t.Errorf("%q: %v, time.ParseDuration says %v", s, d, pd)
				}
			}
		}
		tm, err := parseStepTime(s)
		if err != nil {
			return
		}
		if strings.HasPrefix(strings.TrimSpace(s), "@") {
			sec, nsec := tm.Unix(), tm.Nanosecond()
			var again time.Time
			if sec >= 0 {
				again, err = parseStepTime(fmt.Sprintf("@%d.%09d", sec, nsec))
			} else {
				again, err = parseStepTime(fmt.Sprintf("@%d", sec)) // whole negative seconds only
				tm = time.Unix(sec, 0)
			}
			if err != nil || !again.Equal(tm) {
				t.Errorf("%q: %v reads back as %v (%v)", s, tm, again, err)
			}
			return
		}
		if want, perr := time.Parse(time.RFC3339Nano, strings.TrimSpace(s)); perr != nil || !want.Equal(tm) {
			t.Errorf("%q: %v, time.Parse says %v (%v)", s, tm, want, perr)
		}
	})
}
