package peers

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beevik/ntp"
)

// Result is what a third-party client reported about a server.
type Result struct {
	// OffsetSeconds is the server's time minus the local clock's, as the
	// client reported it (sign conventions differ between tools; compare
	// magnitudes).
	OffsetSeconds float64
	// Stratum is the stratum the server answered with.
	Stratum int
}

// ChronydQuery asks host:port once with `chronyd -Q` (which never sets the
// clock; it also runs without CAP_SYS_TIME here) and reads the offset and
// stratum from its measurements log.
func ChronydQuery(ctx context.Context, root, host string, port int) (Result, error) {
	dir, err := os.MkdirTemp("", "chronyd-q-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	argv := NoCap(filepath.Join(root, "usr/sbin/chronyd"), "-Q", "-u", "root",
		fmt.Sprintf("server %s port %d iburst maxsamples 1", host, port),
		"logdir "+dir, "log measurements")
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return Result{}, fmt.Errorf("chronyd -Q: %w: %s", err, out)
	}
	log, err := os.ReadFile(filepath.Join(dir, "measurements.log"))
	if err != nil {
		return Result{}, fmt.Errorf("chronyd -Q wrote no measurement: %w: %s", err, out)
	}
	// Columns: date time ip leap stratum tests tests tests lp rp score offset ...
	var last []string
	sc := bufio.NewScanner(strings.NewReader(string(log)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 11 && f[2] == host {
			last = f
		}
	}
	if last == nil {
		return Result{}, fmt.Errorf("chronyd -Q: no measurement of %s in its log:\n%s", host, log)
	}
	return parseResult(last[11], last[4], "chronyd measurement")
}

// Ntpdig runs NTPsec's ntpdig (without CAP_SYS_TIME) against host (port 123 only) inside ns and
// parses its one-line report ("DATE TIME (+0000) +0.000015 +/- 0.000109
// 127.0.0.1 s2 no-leap").
func Ntpdig(ctx context.Context, root string, ns *Netns, host string) (Result, error) {
	py := filepath.Join(root, "usr/lib/python3/dist-packages")
	argv := NoCap("env", "PYTHONPATH="+py, "/usr/bin/python3", filepath.Join(root, "usr/bin/ntpdig"), "-t", "2", host)
	cmd := ns.Command(ctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Result{}, fmt.Errorf("ntpdig: %w: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 8 && f[4] == "+/-" && strings.HasPrefix(f[7], "s") {
			return parseResult(f[3], strings.TrimPrefix(f[7], "s"), "ntpdig")
		}
	}
	return Result{}, fmt.Errorf("ntpdig: unexpected output: %q", out)
}

func parseResult(offset, stratum, tool string) (Result, error) {
	off, err := strconv.ParseFloat(offset, 64)
	if err != nil {
		return Result{}, fmt.Errorf("%s offset %q: %w", tool, offset, err)
	}
	st, err := strconv.Atoi(stratum)
	if err != nil {
		return Result{}, fmt.Errorf("%s stratum %q: %w", tool, stratum, err)
	}
	return Result{OffsetSeconds: off, Stratum: st}, nil
}

var build struct {
	once sync.Once
	path string
	err  error
}

// BuildNtptool builds ./cmd/ntptool once per test binary and returns the
// path of the executable. The package's TestMain removes it with
// RemoveBuild.
func BuildNtptool(t TB) string {
	t.Helper()
	repo := repoDir(t)
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "ntptool-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "ntptool")
		cmd := exec.Command("go", "build", "-o", build.path, "./cmd/ntptool")
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/ntptool: %w: %s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// Beevik queries addr once with github.com/beevik/ntp (the library
// ntptool query builds on), from inside ns when ns is not nil, and
// validates the reply with the library's own rules.
func Beevik(addr string, ns *Netns) (Result, error) {
	opt := ntp.QueryOptions{Timeout: 3 * time.Second}
	if ns != nil {
		opt.Dialer = func(_, raddr string) (net.Conn, error) { return ns.Dial("udp", raddr) }
	}
	r, err := ntp.QueryWithOptions(addr, opt)
	if err != nil {
		return Result{}, err
	}
	return Result{OffsetSeconds: r.ClockOffset.Seconds(), Stratum: int(r.Stratum)}, r.Validate()
}

// Check asserts what the interop tests want of every client's view of a
// server on this machine: the served stratum and |offset| < 5 ms (client
// and server read the same clock).
func (r Result) Check(t TB, err error, wantStratum int) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("offset %+.6f s, stratum %d", r.OffsetSeconds, r.Stratum)
	if r.Stratum != wantStratum || math.Abs(r.OffsetSeconds) >= 0.005 {
		t.Errorf("got %+v, want stratum %d and |offset| < 5 ms", r, wantStratum)
	}
}

// RemoveBuild removes what BuildNtptool built; call it from TestMain after
// the tests ran.
func RemoveBuild() {
	if build.path != "" {
		os.RemoveAll(filepath.Dir(build.path))
	}
}
