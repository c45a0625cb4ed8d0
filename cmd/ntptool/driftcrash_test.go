package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ntptool/ntptool/control"
	"github.com/ntptool/ntptool/driftfile"
	"github.com/ntptool/ntptool/internal/peers"
)

// requireNoCapDaemon skips (or, with NTPTOOL_REQUIRE_PEERS=1 as in CI,
// fails) unless the daemon can be run as the rules want it on a host:
// `ntptool run --no-clock-control` under setpriv without CAP_SYS_TIME,
// which needs root (CAP_SETPCAP) and util-linux's setpriv.
func requireNoCapDaemon(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "setpriv --bounding-set needs root"
	} else if _, err := exec.LookPath("setpriv"); err != nil {
		why = "setpriv (util-linux) not installed"
	}
	if why == "" {
		return
	}
	if os.Getenv("NTPTOOL_REQUIRE_PEERS") == "1" {
		t.Fatalf("%s (NTPTOOL_REQUIRE_PEERS=1: the daemon tests must run)", why)
	}
	t.Skip(why)
}

// daemonProc is one `ntptool run --no-clock-control` without
// CAP_SYS_TIME.
type daemonProc struct {
	cmd     *exec.Cmd
	stderr  bytes.Buffer
	done    chan struct{}
	waitErr error
	started time.Time
}

// startDaemon starts the built daemon with conf; it is killed by PID on
// cleanup if still running.
func startDaemon(t *testing.T, bin, conf string, args ...string) *daemonProc {
	t.Helper()
	argv := peers.NoCap(append([]string{bin, "run", "--config", conf, "--no-clock-control"}, args...)...)
	p := &daemonProc{done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.started = time.Now()
	go func() { p.waitErr = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *daemonProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitSynced polls the daemon's control socket (an external process:
// polled with a deadline) until it reports synchronised, and returns that
// status.
func (p *daemonProc) waitSynced(t *testing.T, sock string, limit time.Duration) *control.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var last error
	for ctx.Err() == nil && !p.exited() {
		r, err := control.Query(ctx, sock, control.CommandStatus)
		if err == nil && r.Status != nil && r.Status.SyncState == control.StateSynchronised {
			return r.Status
		}
		last = err
		select {
		case <-time.After(2 * time.Millisecond):
		case <-p.done:
		}
	}
	t.Fatalf("daemon not synchronised within %v (exited %v: %v; last query: %v); log:\n%s", limit, p.exited(), p.waitErr, last, &p.stderr)
	return nil
}

// daemonConfig writes a configuration with one loopback source and the
// drift file and control socket in dir.
func daemonConfig(t *testing.T, dir, server string) (conf, drift, sock string) {
	t.Helper()
	host, port, _ := strings.Cut(server, ":")
	drift, sock = filepath.Join(dir, "drift"), filepath.Join(dir, "ctl.sock")
	text := fmt.Sprintf("driftfile = %q\n\n[control]\nsocket = %q\n\n[hooks]\ndhcp_renew = \"off\"\n\n[[source]]\nserver = %q\nport = %s\niburst = true\n",
		drift, sock, host, port)
	conf = filepath.Join(dir, "ntptool.toml")
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf, drift, sock
}

// written is what driftfile.Write produces: one number, six decimals.
var written = regexp.MustCompile(`^-?[0-9]+\.[0-9]{6}\n$`)

// driftState is the drift file's content and inode.
func driftState(t *testing.T, path string) (string, uint64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("drift file: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data), st.Sys().(*syscall.Stat_t).Ino
}

// tempFiles are driftfile.Write's temporary files left in dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".drift.tmp-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDriftFileCrashSafety is issue 8's acceptance test of the drift
// file: the daemon (the built binary, --no-clock-control, without
// CAP_SYS_TIME) synchronises to a loopback `ntptool serve`, is told to
// stop (SIGTERM: it saves the drift file on exit), and is killed with
// SIGKILL at a random moment from just before that save to just after
// the process would have exited; 200 times. After each kill the file must
// be the old content or the daemon's new one, each valid (driftfile.Read),
// never empty or partial. The kill delays are spread over the SIGTERM →
// exit latency measured first, so they land before, during and after the
// save: the outcomes are counted (old file, a temporary file left by a
// kill mid-save, the new file after a kill, a clean exit first) and the
// test wants kills that left the old file and kills that left the new one,
// i.e. kills on both sides of the rename.
func TestDriftFileCrashSafety(t *testing.T) {
	requireNoCapDaemon(t)
	bin := peers.BuildNtptool(t)
	server := fmt.Sprintf("127.0.0.1:%d", peers.FreeUDPPort(t))
	startServe(t, nil, server, "--listen", server, "--local-stratum", "2", "--no-rate-limit", "--workers", "1")
	dir := t.TempDir()
	conf, drift, sock := daemonConfig(t, dir, server)

	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 8))
	// round seeds the drift file (old content, nine decimals: the daemon
	// writes six, so old and new always differ), runs the daemon until it
	// is synchronised, sends SIGTERM, and kills it after delay (< 0: lets
	// it exit). It checks the file and says what the kill left.
	type outcome int
	const (
		keptOld outcome = iota
		keptOldMidSave
		newAfterKill
		exitedFirst
	)
	names := []string{"old file (killed before the save)", "old file and a temporary file (killed mid-save)", "new file (killed after the rename)", "new file (exited before the kill)"}
	round := func(delay time.Duration) (outcome, time.Duration) {
		seedPPM := (rng.Float64()*2 - 1) * 20
		old := fmt.Sprintf("%.9f\n", seedPPM)
		if err := os.WriteFile(drift, []byte(old), 0o644); err != nil {
			t.Fatal(err)
		}
		_, oldIno := driftState(t, drift)
		p := startDaemon(t, bin, conf)
		st := p.waitSynced(t, sock, 10*time.Second)
		if math.Abs(st.FrequencyPPM-seedPPM) > 2 {
			t.Errorf("the daemon started from %v ppm, want the drift file's %v", st.FrequencyPPM, seedPPM)
		}
		term := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		killed := false
		if delay >= 0 {
			<-time.After(delay) // the kill's moment is the test's input
			killed = p.cmd.Process.Signal(syscall.SIGKILL) == nil && !p.exited()
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("daemon did not exit within 10 s of SIGTERM; log:\n%s", &p.stderr)
		}
		latency := time.Since(term)
		var ee *exec.ExitError
		if errors.As(p.waitErr, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
			killed = ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
		} else if p.waitErr != nil {
			t.Fatalf("daemon exit: %v; log:\n%s", p.waitErr, &p.stderr)
		}
		content, ino := driftState(t, drift)
		d, err := driftfile.Read(drift)
		if err != nil {
			t.Fatalf("after a kill %v after SIGTERM the drift file is not valid: %v (content %q)", delay, err, content)
		}
		tmps := tempFiles(t, dir)
		for _, f := range tmps {
			os.Remove(f) // a kill mid-save leaves one; the next round starts clean
		}
		switch {
		case content == old && ino == oldIno:
			if !killed {
				t.Fatalf("the daemon exited cleanly without saving; log:\n%s", &p.stderr)
			}
			if len(tmps) > 0 {
				return keptOldMidSave, latency
			}
			return keptOld, latency
		case ino != oldIno && written.MatchString(content):
			if math.Abs(d.CorrectionPPM-seedPPM) > 50 {
				t.Errorf("new drift value %v ppm, implausibly far from the %v ppm it started with", d.CorrectionPPM, seedPPM)
			}
			if len(tmps) > 0 {
				t.Errorf("a temporary file was left beside the new file: %v", tmps)
			}
			if killed {
				return newAfterKill, latency
			}
			return exitedFirst, latency
		}
		t.Fatalf("drift file %q (inode %d → %d) is neither the old content %q nor a new file", content, oldIno, ino, old)
		return 0, 0
	}

	// The SIGTERM → exit latency, save included, sets the kills' range.
	var lat []time.Duration
	for range 5 {
		o, l := round(-1)
		if o != exitedFirst {
			t.Fatalf("an unkilled daemon left %s", names[o])
		}
		lat = append(lat, l)
	}
	slices.Sort(lat)
	spread := lat[len(lat)/2] * 5 / 4
	t.Logf("SIGTERM → exit %v (median of 5); kills uniform in [0, %v)", lat[len(lat)/2], spread)
	const kills = 200
	var count [4]int
	for range kills {
		o, _ := round(time.Duration(rng.Int64N(int64(spread))))
		count[o]++
	}
	for i, n := range count {
		t.Logf("%3d × %s", n, names[i])
	}
	if count[keptOld]+count[keptOldMidSave] == 0 || count[newAfterKill]+count[exitedFirst] == 0 {
		t.Errorf("the kills did not straddle the save (%v): the test proves nothing", count)
	}
	if count[exitedFirst] == kills {
		t.Error("every daemon exited before its kill")
	}
}

// logLine is one line of the daemon's JSON log.
type logLine struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	Path  string `json:"path"`
	Err   string `json:"err"`
}

// TestCorruptDriftFileIgnored: a drift file that exists but cannot be
// used is reported (an error line naming the file and why) and ignored:
// the daemon learns the frequency from scratch, never from the bad
// value (each case's would be 42 ppm, or far beyond), and on exit the
// file is replaced by a valid one.
func TestCorruptDriftFileIgnored(t *testing.T) {
	requireNoCapDaemon(t)
	bin := peers.BuildNtptool(t)
	server := fmt.Sprintf("127.0.0.1:%d", peers.FreeUDPPort(t))
	startServe(t, nil, server, "--listen", server, "--local-stratum", "2", "--no-rate-limit", "--workers", "1")
	tests := []struct {
		name, content, why string
	}{
		{"truncated: no final newline", "42.000000", "no final newline"},
		{"empty", "", "no final newline"},
		{"two lines", "42.000000\n42.000000\n", "want one line"},
		{"not a number", "forty-two\n", "not a number"},
		{"NaN", "NaN\n", "not a number"},
		{"beyond the range", "60000\n", "outside"},
		{"chrony's format with a negative bound", "-42 -1\n", "skew"},
		{"binary junk", "\x00\x01\x02\n", "not a number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			conf, drift, sock := daemonConfig(t, dir, server)
			if err := os.WriteFile(drift, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			p := startDaemon(t, bin, conf, "--log-format", "json")
			st := p.waitSynced(t, sock, 10*time.Second)
			if math.Abs(st.FrequencyPPM-42) < 10 || math.Abs(st.FrequencyPPM) > 5 {
				t.Errorf("status frequency %v ppm: the corrupt value was trusted (want near 0, learnt from scratch)", st.FrequencyPPM)
			}
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Fatal("no exit within 10 s of SIGTERM")
			}
			if p.waitErr != nil {
				t.Errorf("exit: %v", p.waitErr)
			}
			var found *logLine
			sc := bufio.NewScanner(bytes.NewReader(p.stderr.Bytes()))
			for sc.Scan() {
				var l logLine
				if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "drift file ignored" {
					found = &l
				}
			}
			switch {
			case found == nil:
				t.Errorf("no \"drift file ignored\" line in the log:\n%s", &p.stderr)
			case found.Level != "ERROR" || found.Path != drift || !strings.Contains(found.Err, tc.why) || !strings.Contains(found.Err, driftfile.ErrCorrupt.Error()):
				t.Errorf("log line %+v, want level ERROR, path %s, an error saying %q", *found, drift, tc.why)
			}
			if _, err := driftfile.Read(drift); err != nil {
				t.Errorf("after the exit the drift file is still unusable: %v", err)
			}
		})
	}
}
