package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ntptool/ntptool/audit"
	"github.com/ntptool/ntptool/internal/peers"
	"github.com/ntptool/ntptool/ntpserve"
	"github.com/ntptool/ntptool/ntpwire"
)

// fakeServer answers NTP on 127.0.0.1 from this host's clock shifted by
// offset (a liar, unless offset is 0), in-process; it stops with the
// test. It returns "127.0.0.1:PORT".
func fakeServer(t *testing.T, offset time.Duration) string {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	st := ntpserve.UpstreamState(ntpserve.Upstream{LocalStratum: 2, RefTime: time.Now().Add(offset)})
	go func() {
		defer close(done)
		buf, out := make([]byte, 512), make([]byte, 512)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			rx := ntpwire.FromTime(time.Now().Add(offset))
			if m, _ := ntpserve.Respond(out, buf[:n], rx, ntpwire.FromTime(time.Now().Add(offset)), &st); m > 0 {
				c.WriteTo(out[:m], from)
			}
		}
	}()
	return c.LocalAddr().String()
}

// syncConf writes a configuration with these servers, lab's hooks and
// journal, and [step] threshold 1 s.
func syncConf(t *testing.T, lab hookLab, servers ...string) string {
	t.Helper()
	var b strings.Builder
	for _, s := range servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "[[source]]\nserver = %q\nport = %s\n", host, port)
	}
	conf, err := os.ReadFile(lab.conf)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(lab.dir, "sync.toml")
	if err := os.WriteFile(path, []byte(b.String()+"\n[step]\nthreshold = \"1s\"\n\n"+string(conf)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// deadServer is a loopback port with no server.
func deadServer(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", peers.FreeUDPPort(t)) }

// TestSyncCommand runs ntptool sync --once in-process on a simulated
// kernel against in-process servers on loopback (honest ones answer from
// this host's clock, liars from a shifted one): the clock changed is the
// simulated one, corrected by what the servers' majority says of this
// host's clock.
func TestSyncCommand(t *testing.T) {
	t.Run("a majority 5 s ahead: stepped with the hooks", func(t *testing.T) {
		k := newSimKernel(t, 0)
		lab := newHookLab(t, "")
		conf := syncConf(t, lab, fakeServer(t, 5*time.Second), fakeServer(t, 0), fakeServer(t, 5*time.Second))
		code, out, stderr := runHost(simHost(k), "sync", "--once", "--config", conf, "--samples", "2", "--timeout", "1s")
		if code != exitOK {
			t.Fatalf("exit %d: %s%s", code, out, stderr)
		}
		if off := k.Offset(); math.Abs(off-5) > 0.01 {
			t.Errorf("the simulated clock moved by %.6f s, want the majority's +5 s", off)
		}
		if !strings.Contains(lab.env("pre-step"), "NTPTOOL_EVENT=pre-step") || !strings.Contains(lab.env("post-step"), "NTPTOOL_REASON=ntptool sync --once: offset +5.0") {
			t.Errorf("hooks saw %q and %q", lab.env("pre-step"), lab.env("post-step"))
		}
		if n := strings.Count(out, "combined"); n != 2 || !strings.Contains(out, "falseticker") || !regexp.MustCompile(`stepped the clock by \+5\.0\d+ s`).MatchString(out) {
			t.Errorf("output:\n%s", out)
		}
		es := lab.entries(t)
		if len(es) != 1 || es[0].Kind != audit.KindStep || len(es[0].Sources) != 2 || len(es[0].Hooks) != 2 || math.Abs(es[0].DeltaSeconds-5) > 0.01 {
			t.Errorf("journal %+v", es)
		}
	})
	t.Run("three honest: a slew, ended", func(t *testing.T) {
		k := newSimKernel(t, 0)
		lab := newHookLab(t, "")
		conf := syncConf(t, lab, fakeServer(t, 0), fakeServer(t, 0), fakeServer(t, 0))
		code, out, stderr := runHost(simHost(k), "sync", "--once", "--config", conf, "--samples", "1", "--timeout", "1s")
		if code != exitOK || !strings.Contains(out, "slewed") || lab.env("pre-step") != "" {
			t.Fatalf("exit %d, hooks ran %v: %s%s", code, lab.env("pre-step") != "", out, stderr)
		}
		if math.Abs(k.Offset()) > 0.01 || k.changes < 2 {
			t.Errorf("offset %.6f s after %d changes: want a small slew, started and ended", k.Offset(), k.changes)
		}
		if es := lab.entries(t); len(es) != 1 || es[0].Kind != audit.KindSlew {
			t.Errorf("journal %+v", es)
		}
	})
	t.Run("a running daemon: refused", func(t *testing.T) {
		k := newSimKernel(t, 0)
		lab := newHookLab(t, "")
		host := simHost(k)
		host.daemonRunning = func(context.Context, string) bool { return true }
		code, _, stderr := runHost(host, "sync", "--once", "--config", syncConf(t, lab, fakeServer(t, 0)))
		if code != exitFailure || !strings.Contains(stderr, "the daemon owns the clock") || k.changes != 0 {
			t.Errorf("exit %d, %d changes: %s", code, k.changes, stderr)
		}
	})
	t.Run("no CAP_SYS_TIME", func(t *testing.T) {
		k := newSimKernel(t, 0)
		lab := newHookLab(t, "")
		host := simHost(k)
		host.canSetTime = func() bool { return false }
		code, _, stderr := runHost(host, "sync", "--once", "--config", syncConf(t, lab, fakeServer(t, 0)))
		if code != exitFailure || !strings.Contains(stderr, "need CAP_SYS_TIME") || !strings.Contains(stderr, "--no-clock-control") || k.changes != 0 {
			t.Errorf("exit %d, %d changes: %s", code, k.changes, stderr)
		}
	})
}

func TestSyncUsage(t *testing.T) {
	lab := newHookLab(t, "")
	noSources := lab.conf // hooks only
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"sync"}, "need --once"},
		{[]string{"sync", "--once", "--config", "/nonexistent/ntptool.toml"}, "nonexistent"},
		{[]string{"sync", "--once", "--config", noSources, "--no-clock-control"}, "no [[source]]"},
		{[]string{"sync", "--once", "--samples", "0", "--no-clock-control"}, "--samples 0"},
		{[]string{"sync", "--once", "--timeout", "0s", "--no-clock-control"}, "--timeout"},
		{[]string{"sync", "--once", "--max-wait", "-1s", "--no-clock-control"}, "--max-wait"},
		{[]string{"sync", "--once", "extra"}, "flags only"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, stderr := runArgs(tt.args...)
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q (stdout %q); want %d and %q", code, stderr, out, exitUsage, tt.want)
			}
		})
	}
	code, out, _ := runArgs("sync", "--help")
	for _, want := range []string{"sync --once [--config FILE] [--no-clock-control]", "ntptool sync --once --config /etc/ntptool.toml",
		"majority", "hold", "Exit status", "CAP_SYS_TIME"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("help (exit %d) lacks %q", code, want)
		}
	}
}

// requireRoot skips (or, in CI, fails) a test that needs root: setpriv
// may drop CAP_SYS_TIME from the bounding set only with CAP_SETPCAP.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NTPTOOL_REQUIRE_PEERS") == "1" {
		t.Fatal("setpriv --bounding-set needs root (NTPTOOL_REQUIRE_PEERS=1: this test must run)")
	}
	t.Skip("setpriv --bounding-set needs root")
}

// startServeNoCap runs the built ntptool serve on addr without
// CAP_SYS_TIME and waits until it answers.
func startServeNoCap(t *testing.T, bin, addr string) {
	t.Helper()
	argv := peers.NoCap(bin, "serve", "--listen", addr, "--local-stratum", "2")
	peers.Start(t, exec.Command(argv[0], argv[1:]...), "serve-"+strings.ReplaceAll(addr, ":", "-"))
	peers.WaitNTP(t, nil, addr)
}

// TestSyncNoClockControl is the host-testable half of `ntptool sync
// --once`: the built binary, without CAP_SYS_TIME (setpriv), against
// loopback `ntptool serve` servers (also without it) and in-process liars,
// with --no-clock-control: it decides by the majority, prints what it
// would do (a slew, or a step with the hooks it would run) and changes
// nothing.
func TestSyncNoClockControl(t *testing.T) {
	requireRoot(t)
	bin := peers.BuildNtptool(t)
	s1, s2 := fmt.Sprintf("127.0.0.1:%d", peers.FreeUDPPort(t)), fmt.Sprintf("127.0.0.1:%d", peers.FreeUDPPort(t))
	startServeNoCap(t, bin, s1)
	startServeNoCap(t, bin, s2)
	liar := fakeServer(t, time.Hour)
	// An hour, give or take the microseconds of an exchange.
	const anHour = `(3599\.99|3600\.00)\d+`
	lab := newHookLab(t, "")
	for _, tt := range []struct {
		name    string
		servers []string
		code    int
		want    []*regexp.Regexp
	}{
		{"two honest out-vote a liar", []string{s1, liar, s2}, exitOK, []*regexp.Regexp{
			regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(s1) + `\s+` + regexp.QuoteMeta(s1) + `\s+2\s+[-+]0\.00\d+\s.*combined$`),
			regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(liar) + `\s.*\+` + anHour + `\s.*falseticker$`),
			regexp.MustCompile(`offset [-+]0\.00\d+ s \(±\d\.\d+ s\) from 2 of 3 servers`),
			regexp.MustCompile(`would slew [-+]0\.00\d+ s over about 1\.0 s`),
			regexp.MustCompile(`no clock control: nothing was changed`)}},
		{"one honest, one liar: no majority", []string{s1, liar}, exitFailure, []*regexp.Regexp{
			regexp.MustCompile(`falseticker`), regexp.MustCompile(`the clock was not changed`)}},
		{"a majority of liars decides: a step, with the hooks it would run", []string{liar, s1, fakeServer(t, time.Hour)}, exitOK, []*regexp.Regexp{
			regexp.MustCompile(`offset \+` + anHour + ` s`),
			regexp.MustCompile(`(?m)^  exec\s+` + regexp.QuoteMeta(filepath.Join(lab.dir, "env.sh")) + `\s+-\s+dry-run\s`),
			regexp.MustCompile(`would step the clock by \+` + anHour + ` s`)}},
		{"nobody answers", []string{deadServer(t)}, exitFailure, []*regexp.Regexp{
			regexp.MustCompile(`no-vote`), regexp.MustCompile(`the clock was not changed`)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			argv := peers.NoCap(bin, "sync", "--once", "--no-clock-control", "--config", syncConf(t, lab, tt.servers...),
				"--samples", "2", "--timeout", "500ms")
			cmd := exec.Command(argv[0], argv[1:]...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tt.code, out, stderr.String())
			}
			for _, re := range tt.want {
				if !re.Match(out) {
					t.Errorf("output does not match %s:\n%s", re, out)
				}
			}
		})
	}
	if lab.env("pre-step") != "" || lab.entries(t) != nil {
		t.Error("--no-clock-control ran a hook or wrote the journal")
	}
}
