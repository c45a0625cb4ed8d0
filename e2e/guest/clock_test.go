package main

import (
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ntptool/ntptool/e2e/guard"
	"github.com/ntptool/ntptool/e2e/report"
	"golang.org/x/sys/unix"
)

// recorder is a kernel that records what would have been changed.
type recorder struct {
	settimes []unix.Timespec
	adjs     []unix.Timex
	now      unix.Timespec
}

func (r *recorder) ClockSettime(ts *unix.Timespec) error {
	r.settimes = append(r.settimes, *ts)
	return nil
}
func (r *recorder) Adjtimex(tx *unix.Timex) (int, error) { r.adjs = append(r.adjs, *tx); return 0, nil }
func (r *recorder) Realtime() unix.Timespec              { return r.now }

// fakeGuest passes the guard: what the init sees inside the VM.
var fakeGuest = guard.FS{PID: 1, Files: fstest.MapFS{
	"proc/cmdline":                {Data: []byte("console=ttyS0 " + guard.Marker + "\n")},
	"sys/class/dmi/id/sys_vendor": {Data: []byte("QEMU\n")},
}}

var clockOps = []struct {
	name string
	op   func(c *guestClock) error
}{
	{"step +30 s", func(c *guestClock) error { return c.Step(30 * time.Second) }},
	{"step -1 h", func(c *guestClock) error { return c.Step(-time.Hour) }},
	{"frequency +200 ppm", func(c *guestClock) error { return c.SetFrequency(200) }},
}

// TestClockRefusesOnThisHost drives the real guard on the machine running
// the tests: every clock change must be refused before the kernel is
// called.
func TestClockRefusesOnThisHost(t *testing.T) {
	for _, tc := range clockOps {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			err := tc.op(newClock(guard.OS{}, rec))
			if !errors.Is(err, guard.ErrNotGuest) {
				t.Fatalf("err = %v, want guard.ErrNotGuest", err)
			}
			if len(rec.settimes)+len(rec.adjs) != 0 {
				t.Fatalf("the kernel was called on the host: %d settime, %d adjtimex", len(rec.settimes), len(rec.adjs))
			}
		})
	}
}

func TestClockInGuest(t *testing.T) {
	rec := &recorder{now: unix.Timespec{Sec: 1000, Nsec: 900_000_000}}
	c := newClock(fakeGuest, rec)
	if err := c.Step(30*time.Second + 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := c.Step(-time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := c.SetFrequency(200); err != nil {
		t.Fatal(err)
	}
	if err := c.SetFrequency(501); err == nil {
		t.Error("SetFrequency(501): no error beyond the kernel's ±500 ppm")
	}
	wantSet := []unix.Timespec{{Sec: 1031, Nsec: 100_000_000}, {Sec: 1000 - 3600, Nsec: 900_000_000}}
	if len(rec.settimes) != 2 || rec.settimes[0] != wantSet[0] || rec.settimes[1] != wantSet[1] {
		t.Errorf("settime calls %+v, want %+v", rec.settimes, wantSet)
	}
	if len(rec.adjs) != 1 || rec.adjs[0].Modes != unix.ADJ_FREQUENCY || rec.adjs[0].Freq != 200*65536 {
		t.Errorf("adjtimex calls %+v, want one ADJ_FREQUENCY of 200*65536", rec.adjs)
	}
}

// clockDiff is CLOCK_REALTIME - CLOCK_MONOTONIC (read only): a step of the
// real clock changes it by the step.
func clockDiff(t *testing.T) float64 {
	var rt, mt unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &rt); err != nil {
		t.Fatal(err)
	}
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mt); err != nil {
		t.Fatal(err)
	}
	return float64(rt.Sec-mt.Sec) + float64(rt.Nsec-mt.Nsec)/1e9
}

func readFreq(t *testing.T) int64 {
	var tx unix.Timex // modes 0: read only
	if _, err := unix.Adjtimex(&tx); err != nil {
		t.Fatal(err)
	}
	return tx.Freq
}

// TestHelperBinaryRefusesOnThisHost builds the real init and runs its
// clock-changing helpers on the host: they must exit 2 with the refusal,
// and the host's clock must be as it was. As a second line of defence the
// binary runs without CAP_SYS_TIME (setpriv), so even a broken guard could
// not change the clock.
func TestHelperBinaryRefusesOnThisHost(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		if os.Getenv("NTPTOOL_REQUIRE_PEERS") == "1" {
			t.Fatal("setpriv (util-linux) not installed")
		}
		t.Skip("setpriv (util-linux) not installed")
	}
	bin := filepath.Join(t.TempDir(), "init")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The scenario runner (PID 1's child in the guest) refuses before it
	// mounts or changes anything; without CAP_SYS_ADMIN and CAP_SYS_TIME
	// it could not anyway.
	t.Run("runner", func(t *testing.T) {
		m0, _ := os.ReadFile("/proc/self/mountinfo")
		cmd := exec.Command(setpriv, "--bounding-set", "-sys_time,-sys_admin", "--", bin)
		cmd.Env = append(os.Environ(), runnerEnv+"=1")
		out, _ := cmd.CombinedOutput()
		rep, err := report.Extract(out)
		if err != nil {
			t.Fatalf("no report from the runner: %v\n%s", err, out)
		}
		if !strings.Contains(rep.Error, "refusing to change a clock") {
			t.Errorf("runner's error %q does not say it refused", rep.Error)
		}
		if m1, _ := os.ReadFile("/proc/self/mountinfo"); string(m1) != string(m0) {
			t.Error("the mount table changed")
		}
	})
	for _, args := range [][]string{{"step", "30"}, {"step", "-3600"}, {"freq", "200"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			d0, f0 := clockDiff(t), readFreq(t)
			cmd := exec.Command(setpriv, append([]string{"--bounding-set", "-sys_time", "--", bin}, args...)...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit: %v, want status 2; output: %s", err, out)
			}
			if !strings.Contains(string(out), "refusing to change a clock") {
				t.Errorf("output %q does not say it refused", out)
			}
			if d := clockDiff(t) - d0; math.Abs(d) > 0.5 {
				t.Errorf("the host's realtime clock moved %+.3f s against monotonic", d)
			}
			if f := readFreq(t); f != f0 {
				t.Errorf("the host's frequency changed: %d -> %d", f0, f)
			}
		})
	}
}
