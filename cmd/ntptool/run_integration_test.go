package main

// Integration tests of `ntptool run` (issue 8's acceptance list): the built
// binary, always with --no-clock-control and without CAP_SYS_TIME in its
// bounding set (setpriv), so that not even a bug can change this machine's
// clock. It runs against ntptool serve, chronyd -x, NTPsec ntpd and the
// small fake servers of this file, on loopback or inside network
// namespaces the tests create. Values are asserted from status --json,
// sources --json and wait-sync's exit status; every wait polls the control
// socket with a deadline. The cases run in parallel: the file takes about
// a minute of wall time, mostly waiting for polls (2 s apart).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ntptool/ntptool/control"
	"github.com/ntptool/ntptool/driftfile"
	"github.com/ntptool/ntptool/internal/peers"
	"github.com/ntptool/ntptool/ntpserve"
	"github.com/ntptool/ntptool/ntpwire"
)

// fakeRatePPM is how fast the fake servers' clock runs against the host's:
// the daemon then has a frequency to learn (+20 ppm: its virtual clock is
// slow against them), so that "frequency kept" means something.
const fakeRatePPM = 20

// fakeServer is a minimal NTP server: it answers from the host clock run
// fakeRatePPM fast from a shared epoch, plus offset (a liar lies by it).
// stop closes its socket (the port then refuses, as a stopped server's
// does); start opens it again on the same address.
type fakeServer struct {
	t      *testing.T
	ns     *peers.Netns
	addr   string // host:port, the port fixed by the first start
	epoch  time.Time
	offset time.Duration
	state  ntpserve.State

	mu   sync.Mutex
	conn net.PacketConn
	done chan struct{}
}

// newFakeServer starts a fake server at addr (port 0: a free one) inside ns
// (nil: this namespace), at stratum 2; it is stopped on cleanup.
func newFakeServer(t *testing.T, ns *peers.Netns, addr string, epoch time.Time, offset time.Duration) *fakeServer {
	t.Helper()
	f := &fakeServer{t: t, ns: ns, addr: addr, epoch: epoch, offset: offset,
		state: ntpserve.State{Stratum: 2, RefID: 0xC0000201, RootDelay: 100 * time.Microsecond, RootDispersion: 200 * time.Microsecond, Precision: -20}}
	f.start()
	t.Cleanup(f.stop)
	return f
}

// now is the fake server's time.
func (f *fakeServer) now() time.Time {
	n := time.Now()
	return n.Add(f.offset + time.Duration(float64(n.Sub(f.epoch))*fakeRatePPM*1e-6))
}

func (f *fakeServer) start() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		return
	}
	var conn net.PacketConn
	err := f.ns.Do(func() error {
		var err error
		conn, err = net.ListenPacket("udp4", f.addr)
		return err
	})
	if err != nil {
		f.t.Fatalf("fake server %s: %v", f.addr, err)
	}
	f.addr = conn.LocalAddr().String()
	f.conn, f.done = conn, make(chan struct{})
	go f.serve(conn, f.done)
}

func (f *fakeServer) serve(conn net.PacketConn, done chan struct{}) {
	defer close(done)
	buf, out := make([]byte, 1024), make([]byte, 1024)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return // closed by stop
		}
		rx := f.now()
		st := f.state
		st.RefTime = ntpwire.FromTime(rx.Add(-time.Second))
		if m, _ := ntpserve.Respond(out, buf[:n], ntpwire.FromTime(rx), ntpwire.FromTime(f.now()), &st); m > 0 {
			_, _ = conn.WriteTo(out[:m], from)
		}
	}
}

func (f *fakeServer) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn == nil {
		return
	}
	f.conn.Close()
	<-f.done
	f.conn = nil
}

// hostPort splits a fake server's address.
func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// sourceTOML is a [[source]] table for a server at addr polled every
// 2^pollLog2 s, with iburst.
func sourceTOML(t *testing.T, addr string, pollLog2 int) string {
	t.Helper()
	host, port := hostPort(t, addr)
	return fmt.Sprintf("[[source]]\nserver = %q\nport = %d\niburst = true\nminpoll = %d\nmaxpoll = %d\n\n", host, port, pollLog2, pollLog2)
}

// daemonDir is a short temporary directory (a unix socket's path must fit
// in 108 bytes; t.TempDir's carry the test's name).
func daemonDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ntrun-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// daemonTOML is a configuration with the control socket and the drift
// file in dir, no audit journal, and the given sources and sections.
func daemonTOML(dir string, body string) string {
	return fmt.Sprintf("driftfile = %q\n\n[control]\nsocket = %q\n\n[audit]\njournal = \"\"\n\n%s",
		filepath.Join(dir, "drift"), filepath.Join(dir, "control.sock"), body)
}

// runProc is a running `ntptool run`.
type runProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	conf    string
	sock    string
	logPath string
	started time.Time
	done    chan struct{}
	waitErr error
}

// startRun runs `ntptool run --config conf --no-clock-control` without
// CAP_SYS_TIME, inside ns when not nil, after the prefix (a command that
// execs the rest), with its control socket at sock. Its JSON log goes to a
// file, shown if the test fails. Cleanup stops it with SIGTERM, by PID.
func startRun(t *testing.T, ns *peers.Netns, conf, sock string, prefix ...string) *runProc {
	t.Helper()
	bin := peers.BuildNtptool(t)
	d := &runProc{t: t, conf: conf, sock: sock, logPath: filepath.Join(t.TempDir(), "run.log"), done: make(chan struct{})}
	argv := append(prefix, peers.NoCap(bin, "run", "--config", conf, "--no-clock-control", "--log-format", "json")...)
	d.cmd = ns.Command(context.Background(), argv[0], argv[1:]...)
	logf, err := os.Create(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	d.started = time.Now()
	go func() { d.waitErr = d.cmd.Wait(); logf.Close(); close(d.done) }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			out, _ := os.ReadFile(d.logPath)
			t.Logf("ntptool run log:\n%s", out)
		}
	})
	return d
}

// stop sends SIGTERM and waits up to 10 s, then kills; it returns the exit
// error (nil: exit 0).
func (d *runProc) stop() error {
	select {
	case <-d.done:
		return d.waitErr
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.t.Errorf("ntptool run did not exit 10 s after SIGTERM")
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	return d.waitErr
}

// view is one look at the daemon: status --json and sources --json.
type view struct {
	at  time.Duration // since the daemon started
	st  control.Status
	src []control.Source
}

func (v view) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "at %.1fs: %s ref %q stratum %d offset %+.6fs freq %+.3fppm skew %.3fppm (%s);", v.at.Seconds(), v.st.SyncState,
		v.st.ReferenceAddress, v.st.Stratum, v.st.SystemTimeOffsetSeconds, v.st.FrequencyPPM, v.st.SkewPPM, v.st.LastError)
	for _, s := range v.src {
		fmt.Fprintf(&b, " [%s %s reach %s]", s.Tally, s.Address, s.ReachOctal)
	}
	return b.String()
}

// source returns the source at address addr.
func (v view) source(addr string) (control.Source, bool) {
	for _, s := range v.src {
		if s.Address == addr {
			return s, true
		}
	}
	return control.Source{}, false
}

// addresses returns the sources' addresses, sorted.
func (v view) addresses() []string {
	var out []string
	for _, s := range v.src {
		out = append(out, s.Address)
	}
	slices.Sort(out)
	return out
}

// look asks the daemon for its status and sources through the commands
// (in-process; they only read the control socket).
func (d *runProc) look() (view, error) {
	v := view{at: time.Since(d.started)}
	for _, c := range []struct {
		cmd string
		dst any
	}{{"status", &v.st}, {"sources", &v.src}} {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		code := run(ctx, []string{c.cmd, "--json", "--socket", d.sock}, &out, &errb)
		cancel()
		if code != 0 {
			return v, fmt.Errorf("%s: exit %d: %s", c.cmd, code, strings.TrimSpace(errb.String()))
		}
		var r control.Reply
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			return v, fmt.Errorf("%s --json: %v: %s", c.cmd, err, out.Bytes())
		}
		switch c.cmd {
		case "status":
			if r.Status == nil {
				return v, errors.New("status --json without a status")
			}
			v.st = *r.Status
		default:
			v.src = r.Sources
		}
	}
	return v, nil
}

// await polls the daemon every 200 ms until ok holds, for at most
// timeout; each view seen is also given to each (if not nil), which
// reports what must never be.
func (d *runProc) await(timeout time.Duration, what string, ok func(view) bool, each ...func(view) error) view {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	var last view
	var lastErr error
	for {
		v, err := d.look()
		if err == nil {
			last, lastErr = v, nil
			for _, e := range each {
				if err := e(v); err != nil {
					d.t.Fatalf("%s: %v", v, err)
				}
			}
			if ok(v) {
				return v
			}
		} else {
			lastErr = err
		}
		select {
		case <-d.done:
			d.t.Fatalf("ntptool run exited (%v) while waiting for %s", d.waitErr, what)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: not within %v; last look %s (err %v)", what, timeout, last, lastErr)
		}
	}
}

// watch polls the daemon for dur, checking each view.
func (d *runProc) watch(dur time.Duration, check func(view) error) view {
	d.t.Helper()
	end := time.Now().Add(dur)
	return d.await(dur+10*time.Second, "the watch", func(view) bool { return time.Now().After(end) }, check)
}

// logRecord is one line of the daemon's JSON log.
type logRecord map[string]any

// logRecords reads the daemon's log.
func (d *runProc) logRecords() []logRecord {
	d.t.Helper()
	f, err := os.Open(d.logPath)
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	var out []logRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r logRecord
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// logged returns the log records with message msg.
func (d *runProc) logged(msg string) []logRecord {
	var out []logRecord
	for _, r := range d.logRecords() {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// noStep fails the test if the daemon proposed or made a step.
func (d *runProc) noStep() {
	d.t.Helper()
	for _, msg := range []string{"step proposed", "clock stepped", "the clock was stepped by another process"} {
		if r := d.logged(msg); len(r) > 0 {
			d.t.Errorf("the log has %q: %v", msg, r)
		}
	}
}

// waitSync runs the built `ntptool wait-sync` with args against the
// daemon's socket and returns its exit status and output.
func (d *runProc) waitSync(args ...string) (code int, stdout, stderr string) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, peers.BuildNtptool(d.t), append([]string{"wait-sync", "--socket", d.sock}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		d.t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func synchronised(v view) bool { return v.st.SyncState == control.StateSynchronised }

// keptFrom is how far the frequency may move from a view's and still be
// the same estimate: twice its error bound (skew), at least learntPPM (the
// estimate still moves that much after 40 s of 2 s polls, more on a loaded
// machine, where the skew has read 0.7 ppm with the estimate 3 ppm off).
// A frequency lost would start again from 0, fakeRatePPM away.
func keptFrom(v view) float64 { return max(learntPPM, 2*v.st.SkewPPM) }

// learntPPM is how close to fakeRatePPM a learnt frequency is.
const learntPPM = 3

// learnt: synchronised, every source answered its last 8 polls, and the
// frequency correction within 3 ppm of the fake servers' rate (the
// estimate still moves by a ppm or so after 40 s of 2 s polls).
func learnt(v view) bool {
	if !synchronised(v) || math.Abs(v.st.FrequencyPPM-fakeRatePPM) > learntPPM {
		return false
	}
	for _, s := range v.src {
		if s.Reach != 0o377 {
			return false
		}
	}
	return len(v.src) > 0
}

// answers: the daemon is up (its control socket answers).
func answers(view) bool { return true }

// checkUnsynchronised asserts what status shows before the first update.
func checkUnsynchronised(t *testing.T, v view) {
	t.Helper()
	st := v.st
	if st.SyncState != control.StateUnsynchronised || st.Stratum != 16 || st.Leap != control.LeapUnsynchronised || st.ReferenceID != "" || st.ClockControl {
		t.Errorf("before any reply: %+v; want unsynchronised, stratum 16, leap unsynchronised, no reference, no clock control", st)
	}
}

// checkSynchronised asserts status and sources once synchronised to the
// one source at addr of the given stratum: stratum + 1, the reference
// (its IPv4 address as the reference ID), the tally '*', a small offset.
func checkSynchronised(t *testing.T, v view, addr string, upstreamStratum int) {
	t.Helper()
	st := v.st
	ap := netip.MustParseAddrPort(addr)
	wantID := fmt.Sprintf("%08X", binary.BigEndian.Uint32(ap.Addr().AsSlice()))
	if st.SyncState != control.StateSynchronised || st.Stratum != upstreamStratum+1 || st.ReferenceAddress != addr ||
		st.ReferenceID != wantID || st.Leap != control.LeapNormal || st.ClockControl {
		t.Errorf("status %+v; want synchronised, stratum %d, reference %s (%s), leap normal, no clock control", st, upstreamStratum+1, addr, wantID)
	}
	if st.RootDelaySeconds <= 0 || st.RootDispersionSeconds <= 0 || st.RefTime.IsZero() {
		t.Errorf("status %+v; want root delay and dispersion > 0, a reference time", st)
	}
	if len(v.src) != 1 {
		t.Fatalf("sources %+v; want one", v.src)
	}
	s := v.src[0]
	if s.Tally != "*" || s.State != control.SourceSelected || s.Address != addr || s.Stratum != upstreamStratum || s.Reach == 0 || s.LastSample == nil {
		t.Fatalf("source %+v; want '*' selected at %s, stratum %d, reach > 0, a sample", s, addr, upstreamStratum)
	}
	// Server and daemon read the same clock: microseconds apart, or
	// within half the round trip when the machine is loaded and the
	// first samples wait for the scheduler.
	x := s.LastSample
	bound := max(1e-3, x.DelaySeconds/2+1e-4)
	if math.Abs(x.OffsetSeconds) > bound || x.DelaySeconds <= 0 || x.DelaySeconds > 0.01 {
		t.Errorf("last sample %+v; want |offset| < %.6f s and 0 < delay < 10 ms", *x, bound)
	}
	if math.Abs(st.SystemTimeOffsetSeconds) > bound {
		t.Errorf("status offset %+v s; want below %.6f s", st.SystemTimeOffsetSeconds, bound)
	}
}

// TestRunInterop: against ntptool serve, chronyd -x (loopback) and NTPsec
// ntpd (port 123 in a namespace, the daemon in it too), the daemon
// synchronises, and status, sources and wait-sync show it. The server
// starts after the daemon, so that wait-sync's timeout (exit 1) is seen
// first; bad usage exits 2. SIGTERM stops the daemon with exit 0 and a
// drift file.
func TestRunInterop(t *testing.T) {
	t.Parallel()
	peers.Root(t)
	tests := []struct {
		name  string
		netns bool
		// start starts the server at addr: a free port on loopback, or
		// 127.0.0.1:123 inside the namespace ns.
		start   func(t *testing.T, ns *peers.Netns, addr string)
		stratum int
	}{
		{"ntptool serve", false, func(t *testing.T, _ *peers.Netns, addr string) {
			startServe(t, nil, addr, "--listen", addr, "--local-stratum", "2")
		}, 2},
		{"chronyd -x", false, func(t *testing.T, _ *peers.Netns, addr string) {
			_, port := hostPort(t, addr)
			peers.StartChronyServerIn(t, nil, port)
		}, 2},
		{"NTPsec ntpd", true, func(t *testing.T, ns *peers.Netns, _ string) {
			peers.StartNTPsecServer(t, ns)
		}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ns *peers.Netns
			addr := fmt.Sprintf("127.0.0.1:%d", peers.FreeUDPPort(t))
			if tc.netns {
				ns = peers.NewNetns(t)
				addr = "127.0.0.1:123"
			}
			dir := daemonDir(t)
			conf := filepath.Join(dir, "ntptool.toml")
			if err := os.WriteFile(conf, []byte(daemonTOML(dir, sourceTOML(t, addr, 1))), 0o644); err != nil {
				t.Fatal(err)
			}
			d := startRun(t, ns, conf, filepath.Join(dir, "control.sock"))
			checkUnsynchronised(t, d.await(10*time.Second, "the control socket", answers))
			if code, out, errOut := d.waitSync("--timeout", "1s", "--interval", "100ms"); code != 1 || out != "" ||
				!strings.Contains(errOut, "not synchronised within 1s: sync state unsynchronised") {
				t.Errorf("wait-sync --timeout 1s before the server: exit %d, %q, %q; want 1, not synchronised", code, out, errOut)
			}
			for _, args := range [][]string{{"--max-offset", "-1ms"}, {"--timeout", "soon"}, {"extra"}} {
				if code, _, errOut := d.waitSync(args...); code != 2 {
					t.Errorf("wait-sync %v: exit %d (%s); want 2", args, code, errOut)
				}
			}

			t0 := time.Now()
			tc.start(t, ns, addr)
			code, out, errOut := d.waitSync("--max-offset", "10ms", "--timeout", "60s", "--interval", "100ms")
			took := time.Since(t0)
			if code != 0 || !strings.Contains(out, "synchronised: offset") || !strings.Contains(out, fmt.Sprintf("stratum %d", tc.stratum+1)) {
				t.Fatalf("wait-sync --max-offset 10ms --timeout 60s: exit %d, %q, %q; want 0", code, out, errOut)
			}
			v, err := d.look()
			if err != nil {
				t.Fatal(err)
			}
			checkSynchronised(t, v, addr, tc.stratum)
			t.Logf("synchronised %.1f s after the server started: %s", took.Seconds(), v)

			if err := d.stop(); err != nil {
				t.Errorf("SIGTERM: %v; want exit 0", err)
			}
			// Server and daemon read the same clock: a frequency near 0.
			if drift, err := driftfile.Read(filepath.Join(dir, "drift")); err != nil || len(d.logged("drift file saved")) != 1 || math.Abs(drift.CorrectionPPM) > 50 {
				t.Errorf("drift file after SIGTERM: %+v, %v; want it saved once, near 0 ppm", drift, err)
			}
			d.noStep()
		})
	}
}

// TestRunFalseticker: three servers, one 0.5 s ahead: the liar is marked
// 'x' and never followed: the reference is always an honest server and
// the offset stays within 5 ms from the first update on, without a step.
func TestRunFalseticker(t *testing.T) {
	t.Parallel()
	epoch := time.Now()
	a := newFakeServer(t, nil, "127.0.0.1:0", epoch, 0)
	b := newFakeServer(t, nil, "127.0.0.1:0", epoch, 0)
	liar := newFakeServer(t, nil, "127.0.0.1:0", epoch, 500*time.Millisecond)
	dir := daemonDir(t)
	conf := filepath.Join(dir, "ntptool.toml")
	body := sourceTOML(t, a.addr, 1) + sourceTOML(t, liar.addr, 1) + sourceTOML(t, b.addr, 1)
	if err := os.WriteFile(conf, []byte(daemonTOML(dir, body)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startRun(t, nil, conf, filepath.Join(dir, "control.sock"))
	neverFollowed := func(v view) error {
		if v.st.SyncState == control.StateUnsynchronised {
			return nil
		}
		if v.st.ReferenceAddress == liar.addr || math.Abs(v.st.SystemTimeOffsetSeconds) > 5e-3 {
			return fmt.Errorf("the liar is followed")
		}
		if s, _ := v.source(liar.addr); s.Tally == "*" || s.Tally == "+" {
			return fmt.Errorf("the liar is combined")
		}
		return nil
	}
	marked := func(v view) bool {
		s, _ := v.source(liar.addr)
		return synchronised(v) && s.Tally == "x" && s.State == control.SourceFalseticker
	}
	v := d.await(30*time.Second, "the liar marked 'x'", marked, neverFollowed)
	t.Logf("marked: %s", v)
	// Ten more polls: still marked, still not followed.
	v = d.watch(20*time.Second, func(v view) error {
		if err := neverFollowed(v); err != nil {
			return err
		}
		if !marked(v) {
			return fmt.Errorf("the liar is no longer marked 'x'")
		}
		return nil
	})
	s, _ := v.source(liar.addr)
	if s.LastSample == nil || math.Abs(s.LastSample.MeasuredOffsetSeconds+0.5) > 5e-3 {
		t.Errorf("liar %+v: want a measured offset of -0.5 s (this clock is behind it)", s)
	}
	for _, addr := range []string{a.addr, b.addr} {
		if s, _ := v.source(addr); s.Tally != "*" && s.Tally != "+" {
			t.Errorf("honest source %+v: want '*' or '+'", s)
		}
	}
	if r := d.logged("state"); len(r) != 1 || r[0]["state"] != "synchronised" {
		t.Errorf("state changes %v: want synchronised once", r)
	}
	d.noStep()
	t.Logf("after 20 s more: %s", v)
}

// TestRunHoldover: all servers stopped: the sources become '?' after their
// polls (8 unanswered) and the status says holdover, on the learned
// frequency; servers back on the same ports: synchronised again without a
// step, the offset small, the frequency still the learned one.
func TestRunHoldover(t *testing.T) {
	t.Parallel()
	epoch := time.Now()
	var servers []*fakeServer
	var body string
	for range 3 {
		s := newFakeServer(t, nil, "127.0.0.1:0", epoch, 0)
		servers = append(servers, s)
		body += sourceTOML(t, s.addr, 1)
	}
	dir := daemonDir(t)
	conf := filepath.Join(dir, "ntptool.toml")
	if err := os.WriteFile(conf, []byte(daemonTOML(dir, body)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startRun(t, nil, conf, filepath.Join(dir, "control.sock"))
	v := d.await(90*time.Second, "the frequency learnt", learnt) // 40 s unloaded; CI runs it beside the race detector
	t.Logf("learnt: %s", v)

	for _, s := range servers {
		s.stop()
	}
	stopped := time.Now()
	before, err := d.look()
	if err != nil {
		t.Fatal(err)
	}
	freq := before.st.FrequencyPPM
	holdover := func(v view) bool {
		if v.st.SyncState != control.StateHoldover {
			return false
		}
		for _, s := range v.src {
			if s.Tally != "?" || s.Reach != 0 {
				return false
			}
		}
		return true
	}
	sameFreq := func(v view) error {
		if math.Abs(v.st.FrequencyPPM-freq) > 1e-6 {
			return fmt.Errorf("frequency %v ppm, want the learned %v ppm", v.st.FrequencyPPM, freq)
		}
		return nil
	}
	v = d.await(40*time.Second, "holdover with the sources unreachable", holdover, sameFreq)
	t.Logf("holdover %.1f s after the servers stopped: %s", time.Since(stopped).Seconds(), v)
	if v.st.ReferenceID == "" || v.st.Stratum != 3 {
		t.Errorf("holdover status %+v: want the last reference and stratum 3 kept", v.st)
	}
	d.watch(4*time.Second, func(v view) error {
		if !holdover(v) {
			return errors.New("holdover ended without servers")
		}
		return sameFreq(v)
	})

	for _, s := range servers {
		s.start()
	}
	back := time.Now()
	resynced := func(v view) bool {
		if !synchronised(v) {
			return false
		}
		for _, s := range v.src {
			if s.Tally != "*" && s.Tally != "+" {
				return false
			}
		}
		return true
	}
	small := func(v view) error {
		if math.Abs(v.st.SystemTimeOffsetSeconds) > 1e-3 {
			return errors.New("offset beyond 1 ms")
		}
		return nil
	}
	v = d.await(30*time.Second, "synchronised again", resynced, small)
	t.Logf("synchronised again %.1f s after the servers came back: %s", time.Since(back).Seconds(), v)
	if math.Abs(v.st.FrequencyPPM-freq) > keptFrom(before) {
		t.Errorf("frequency %v ppm after holdover; want the learned %v ppm (± %.2f)", v.st.FrequencyPPM, freq, keptFrom(before))
	}
	d.noStep()
	var states []any
	for _, r := range d.logged("state") {
		states = append(states, r["state"])
	}
	if want := []any{"synchronised", "holdover", "synchronised"}; !slices.Equal(states, want) {
		t.Errorf("state changes logged %v; want %v", states, want)
	}
}

// netnsHosts gives namespace ns its own /etc/hosts (ip netns exec binds
// /etc/netns/NAME/* over /etc), removed on cleanup.
func netnsHosts(t *testing.T, ns *peers.Netns, hosts string) {
	t.Helper()
	dir := filepath.Join("/etc/netns", ns.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRunPoolReplacement: a pool name that resolves to 6 addresses
// (/etc/hosts of a namespace: Go's resolver reads it) of which the first
// 4 are taken, 2 of them dead: after 8 unanswered polls each dead member
// is replaced by a spare of the same lookup, leaving 4 live sources, the
// learned frequency kept throughout.
func TestRunPoolReplacement(t *testing.T) {
	t.Parallel()
	ns := peers.NewNetns(t)
	epoch := time.Now()
	live := []string{"127.0.0.1:123", "127.0.0.2:123", "127.0.0.3:123", "127.0.0.4:123"}
	for _, addr := range live {
		newFakeServer(t, ns, addr, epoch, 0)
	}
	// The dead ones among the first four: maxsources = 4 takes them.
	netnsHosts(t, ns, "127.0.0.1 localhost\n"+
		"127.0.0.1 pool.test\n127.0.0.5 pool.test\n127.0.0.2 pool.test\n127.0.0.6 pool.test\n127.0.0.3 pool.test\n127.0.0.4 pool.test\n")
	dir := daemonDir(t)
	conf := filepath.Join(dir, "ntptool.toml")
	body := "[[source]]\npool = \"pool.test\"\nmaxsources = 4\niburst = true\nminpoll = 1\nmaxpoll = 1\n"
	if err := os.WriteFile(conf, []byte(daemonTOML(dir, body)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startRun(t, ns, conf, filepath.Join(dir, "control.sock"))
	first := d.await(20*time.Second, "the pool resolved", func(v view) bool { return len(v.src) == 4 })
	if got, want := first.addresses(), []string{"127.0.0.1:123", "127.0.0.2:123", "127.0.0.5:123", "127.0.0.6:123"}; !slices.Equal(got, want) {
		t.Fatalf("first members %v; want %v (the resolver's order)", got, want)
	}
	// Synchronised within a few polls; the frequency is still being learnt
	// (16.7 ppm of 20 after 14 s on a loaded CI machine).
	v := d.await(20*time.Second, "synchronised on the two live members", synchronised)
	synced, bound := v.at, math.Abs(v.st.FrequencyPPM-fakeRatePPM)+keptFrom(v)
	t.Logf("synchronised: %s", v)
	replaced := func(v view) bool {
		if !slices.Equal(v.addresses(), live) || math.Abs(v.st.FrequencyPPM-fakeRatePPM) > learntPPM {
			return false
		}
		for _, s := range v.src {
			if s.Tally != "*" && s.Tally != "+" && s.Tally != "-" || !s.Pool || s.Name != "pool.test" {
				return false
			}
		}
		return true
	}
	kept := func(v view) error {
		// Lost, the frequency would start again from 0, fakeRatePPM away:
		// beyond the tightest bound an earlier view set (its distance
		// from fakeRatePPM plus its tolerance; the first estimates are
		// tens of ppm wide).
		dist := math.Abs(v.st.FrequencyPPM - fakeRatePPM)
		if dist > bound || v.at > synced && v.st.SyncState != control.StateSynchronised {
			return errors.New("synchronisation or the learned frequency lost")
		}
		bound = min(bound, dist+keptFrom(v))
		return nil
	}
	v = d.await(45*time.Second, "4 live members", replaced, kept)
	t.Logf("4 live members %.1f s after start: %s", v.at.Seconds(), v)
	var removed, added []string
	for _, r := range d.logged("source removed") {
		removed = append(removed, fmt.Sprint(r["address"], " ", r["reason"]))
	}
	for _, r := range d.logged("source added") {
		added = append(added, fmt.Sprint(r["address"], " ", r["reason"]))
	}
	slices.Sort(removed)
	if want := []string{"127.0.0.5:123 unreachable: no reply to the last 8 polls", "127.0.0.6:123 unreachable: no reply to the last 8 polls"}; !slices.Equal(removed, want) {
		t.Errorf("removed %q; want %q", removed, want)
	}
	if want := []string{"127.0.0.3:123 replaces 127.0.0.5:123", "127.0.0.4:123 replaces 127.0.0.6:123"}; len(added) != 6 || !slices.Equal(added[4:], want) {
		t.Errorf("added %q; want the first 4 from the pool's name, then %q", added, want)
	}
	d.noStep()
}

// ntpdigReply runs NTPsec's ntpdig (without CAP_SYS_TIME) at debug level
// against host:123 inside ns and returns the reply packet from its dump,
// its output and its exit error.
func ntpdigReply(t *testing.T, ns *peers.Netns, host string) ([]byte, string, error) {
	t.Helper()
	root := peers.Root(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	py := filepath.Join(root, "usr/lib/python3/dist-packages")
	argv := peers.NoCap("env", "PYTHONPATH="+py, "/usr/bin/python3", filepath.Join(root, "usr/bin/ntpdig"), "-D", "5", "-t", "2", host)
	out, err := ns.Command(ctx, argv[0], argv[1:]...).CombinedOutput()
	// The dump: 16 bytes a line, the request's 48 bytes, then the reply's.
	var pkts []byte
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 16 {
			continue
		}
		b, herr := hex.DecodeString(strings.Join(f[:16], ""))
		if herr == nil {
			pkts = append(pkts, b...)
		}
	}
	if len(pkts) < 96 {
		t.Fatalf("ntpdig: no reply in its dump (%v):\n%s", err, out)
	}
	return pkts[48:96], string(out), err
}

// TestRunEmbeddedServer: [server] enabled, on 127.0.0.1:123 in a
// namespace, queried by ntpdig: leap 3 and stratum 16 while
// unsynchronised (ntpdig refuses the time); after synchronising to the
// upstream at 127.0.0.2 (stratum 2), stratum 3 and the upstream's address
// as the reference ID, and ntpdig takes the time.
func TestRunEmbeddedServer(t *testing.T) {
	t.Parallel()
	peers.Root(t)
	ns := peers.NewNetns(t)
	dir := daemonDir(t)
	conf := filepath.Join(dir, "ntptool.toml")
	upstream := "127.0.0.2:123"
	body := sourceTOML(t, upstream, 1) + "[server]\nenabled = true\nlisten = [\"127.0.0.1:123\"]\n"
	if err := os.WriteFile(conf, []byte(daemonTOML(dir, body)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startRun(t, ns, conf, filepath.Join(dir, "control.sock"))
	checkUnsynchronised(t, d.await(10*time.Second, "the control socket", answers))
	reply, out, err := ntpdigReply(t, ns, "127.0.0.1")
	if leap, stratum := reply[0]>>6, reply[1]; leap != 3 || stratum != 16 || err == nil || !strings.Contains(out, "stratum too high") {
		t.Errorf("unsynchronised: leap %d, stratum %d, ntpdig %v; want leap 3, stratum 16, refused:\n%s", leap, stratum, err, out)
	}

	// Only the fake server's time is 20 ppm fast: the host clock the
	// embedded server serves is not the daemon's virtual one.
	newFakeServer(t, ns, upstream, time.Now(), 0)
	v := d.await(30*time.Second, "synchronised", synchronised)
	checkSynchronised(t, v, upstream, 2)
	reply, out, err = ntpdigReply(t, ns, "127.0.0.1")
	leap, stratum, refid := reply[0]>>6, reply[1], binary.BigEndian.Uint32(reply[12:16])
	if err != nil || leap != 0 || stratum != 3 || refid != 0x7F000002 {
		t.Errorf("synchronised: leap %d, stratum %d, refid %08X, ntpdig %v; want leap 0, stratum 3, refid 7F000002 (127.0.0.2):\n%s", leap, stratum, refid, err, out)
	}
	res, err := peers.Ntpdig(context.Background(), peers.Root(t), ns, "127.0.0.1")
	res.Check(t, err, 3)
}

// TestRunReload: SIGHUP after the configuration lost one source and
// gained another: the sources change, the learned frequency stays; a
// broken configuration on the next SIGHUP is reported and the old one
// stays (the status still answers, the sources unchanged).
func TestRunReload(t *testing.T) {
	t.Parallel()
	epoch := time.Now()
	a := newFakeServer(t, nil, "127.0.0.1:0", epoch, 0)
	b := newFakeServer(t, nil, "127.0.0.1:0", epoch, 0)
	c := newFakeServer(t, nil, "127.0.0.1:0", epoch, 0)
	dir := daemonDir(t)
	conf := filepath.Join(dir, "ntptool.toml")
	write := func(text string) {
		t.Helper()
		// Replace, as an editor or a package manager does.
		if err := os.WriteFile(conf+".new", []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(conf+".new", conf); err != nil {
			t.Fatal(err)
		}
	}
	write(daemonTOML(dir, sourceTOML(t, a.addr, 1)+sourceTOML(t, b.addr, 1)))
	d := startRun(t, nil, conf, filepath.Join(dir, "control.sock"))
	v := d.await(90*time.Second, "the frequency learnt", learnt) // 40 s unloaded; CI runs it beside the race detector
	before := v
	t.Logf("before: %s", v)

	write(daemonTOML(dir, sourceTOML(t, b.addr, 1)+sourceTOML(t, c.addr, 1)))
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	want := []string{b.addr, c.addr}
	slices.Sort(want)
	kept := func(v view) error {
		if !synchronised(v) || math.Abs(v.st.FrequencyPPM-before.st.FrequencyPPM) > keptFrom(before) {
			return fmt.Errorf("synchronisation or the frequency (%v ppm before) lost", before.st.FrequencyPPM)
		}
		return nil
	}
	v = d.await(20*time.Second, "sources b and c, both used", func(v view) bool {
		if !slices.Equal(v.addresses(), want) {
			return false
		}
		for _, s := range v.src {
			if s.Tally != "*" && s.Tally != "+" {
				return false
			}
		}
		return true
	}, kept)
	t.Logf("after SIGHUP: %s", v)
	if r := d.logged("configuration reloaded"); len(r) != 1 {
		t.Errorf("reload logged %d times, want once", len(r))
	}

	write("[[source]]\nserver = \n")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	const refused = "reload: the configuration does not load; keeping the old one"
	d.await(10*time.Second, "the broken configuration reported", func(view) bool { return len(d.logged(refused)) == 1 }, kept)
	v = d.watch(4*time.Second, func(v view) error {
		if !slices.Equal(v.addresses(), want) {
			return errors.New("the sources changed")
		}
		return kept(v)
	})
	r := d.logged(refused)[0]
	if r["level"] != "ERROR" || !strings.Contains(fmt.Sprint(r["err"]), conf) {
		t.Errorf("log %v: want an error naming %s", r, conf)
	}
	t.Logf("after the broken SIGHUP: %s", v)
}

// TestRunDropInConfig: `ntptool run --config` given an ntp.conf or a
// chrony.conf synchronises; what the importer cannot map is logged as a
// warning with its line. Such a file cannot move the control socket from
// /run/ntptool/control.sock (nor the audit journal from /var/log), so the
// daemon runs in a namespace of its own (network: ntp.conf serves on
// :123; mount: a temporary directory over /run and /var/log).
func TestRunDropInConfig(t *testing.T) {
	t.Parallel()
	peers.RequireNetns(t)
	tests := []struct {
		name, file string
		text       func(dir, upstream string) string
		// Lines of the directives the importer cannot map.
		notImported map[int]string
	}{
		{"ntp.conf", "ntp.conf", func(dir, up string) string {
			host, port := hostPort(t, up)
			return "# /etc/ntp.conf\n" +
				"driftfile " + filepath.Join(dir, "ntp.drift") + "\n" +
				"statsdir /var/log/ntpstats/\n" +
				fmt.Sprintf("server %s port %d iburst minpoll 1 maxpoll 1\n", host, port) +
				"restrict default kod nomodify notrap nopeer noquery limited\n" +
				"restrict 127.0.0.1\n" +
				"keys /etc/ntp/keys\n"
		}, map[int]string{3: "statsdir /var/log/ntpstats/", 7: "keys /etc/ntp/keys"}},
		{"chrony.conf", "chrony.conf", func(dir, up string) string {
			host, port := hostPort(t, up)
			return fmt.Sprintf("server %s port %d iburst minpoll 1 maxpoll 1\n", host, port) +
				"driftfile " + filepath.Join(dir, "chrony.drift") + "\n" +
				"makestep 1.0 3\n" +
				"rtcsync\n" +
				"logdir /var/log/chrony\n" +
				"keyfile /etc/chrony/chrony.keys\n"
		}, map[int]string{4: "rtcsync", 5: "logdir /var/log/chrony", 6: "keyfile /etc/chrony/chrony.keys"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := peers.NewNetns(t)
			upstream := "127.0.0.2:1123"
			newFakeServer(t, ns, upstream, time.Now(), 0)
			dir := daemonDir(t)
			run, logDir := filepath.Join(dir, "run"), filepath.Join(dir, "log")
			for _, p := range []string{run, logDir} {
				if err := os.Mkdir(p, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			conf := filepath.Join(dir, tc.file)
			if err := os.WriteFile(conf, []byte(tc.text(dir, upstream)), 0o644); err != nil {
				t.Fatal(err)
			}
			// A private mount namespace: the mounts never reach the host.
			prefix := []string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
				`mount --bind "$1" /run && mount --bind "$2" /var/log && shift 2 && exec "$@"`, "sh", run, logDir}
			d := startRun(t, ns, conf, filepath.Join(run, "ntptool", "control.sock"), prefix...)
			v := d.await(30*time.Second, "synchronised", synchronised)
			checkSynchronised(t, v, upstream, 2)
			if code, out, errOut := d.waitSync("--max-offset", "10ms", "--timeout", "10s"); code != 0 {
				t.Errorf("wait-sync: exit %d, %q, %q", code, out, errOut)
			}

			notes := map[int]string{}
			for _, r := range d.logged("configuration: not imported") {
				line, _ := r["line"].(float64)
				notes[int(line)] = fmt.Sprint(r["directive"])
				if r["level"] != "WARN" || r["file"] != conf || r["why"] == "" {
					t.Errorf("log %v: want a warning naming the file and why", r)
				}
			}
			if !maps.Equal(notes, tc.notImported) {
				t.Errorf("not imported: %v; want %v", notes, tc.notImported)
			}

			// The commands find the socket through --config with the same
			// file (inside the daemon's mount namespace).
			bin := peers.BuildNtptool(t)
			cmd := exec.Command("nsenter", "--target", strconv.Itoa(d.cmd.Process.Pid), "--mount", "--", bin, "status", "--json", "--config", conf)
			out, err := cmd.Output()
			var r control.Reply
			if err != nil || json.Unmarshal(out, &r) != nil || r.Status == nil || r.Status.SyncState != control.StateSynchronised {
				t.Errorf("status --config %s: %v, %s", tc.file, err, out)
			}
			if err := d.stop(); err != nil {
				t.Errorf("SIGTERM: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, strings.TrimSuffix(tc.file, ".conf")+".drift")); err != nil {
				t.Errorf("the file's driftfile: %v", err)
			}
		})
	}
}

// The control commands' --config takes what run's does: an ntp.conf or a
// chrony.conf names no socket, so the default one is asked (exit 1 here,
// no daemon), never refused as a bad TOML file (exit 2).
func TestControlSocketFromDropInConfig(t *testing.T) {
	conf := writeFile(t, "chrony.conf", "server 192.0.2.1 iburst\nmakestep 1 3\n")
	code, _, errOut := runCmd(t, "status", "--config", conf)
	if code == exitUsage || (code == exitFailure && !strings.Contains(errOut, "/run/ntptool/control.sock")) {
		t.Errorf("status --config chrony.conf: exit %d, %s; want the default socket asked", code, errOut)
	}
}
