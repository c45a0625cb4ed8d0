package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/ntptool/ntptool/e2e/guard"
	"github.com/ntptool/ntptool/e2e/report"
	"golang.org/x/sys/unix"
)

// Guest network (QEMU user-mode networking): the host's loopback is
// hostAddr; nothing else is routed.
const (
	guestCIDR = "10.0.2.15/24"
	hostAddr  = "10.0.2.2"
)

// Paths inside the initramfs, laid out by the harness.
const (
	modulesOrder = "/e2e/modules.order"
	modulesDir   = "/lib/modules"
	ntptoolBin   = "/bin/ntptool"
	ipBin        = "/sbin/ip" // iproute2: busybox's ip lacks valid_lft
	setprivBin   = "/usr/bin/setpriv"
)

// g is the state of the running guest: its report and its clock.
type g struct {
	spec  report.Spec
	rep   *report.Report
	clock *guestClock
	// queryTimes are the start times of the independent queries, to
	// check the kernel trace's count of their packets.
	queryTimes []float64
	// daemonLogDone is closed once the daemon's log is all written.
	daemonLogDone chan struct{}
	// daemonPID is the PID of the daemon startDaemon started last.
	daemonPID int
}

func (s *g) queriesSince(t float64) int {
	n := 0
	for _, q := range s.queryTimes {
		if q >= t {
			n++
		}
	}
	return n
}

func mono() float64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

func boottime() float64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

// note logs to the console and keeps the line in the report.
func (s *g) note(format string, args ...any) {
	line := fmt.Sprintf("[%8.3f] %s", mono(), fmt.Sprintf(format, args...))
	fmt.Println("e2e-guest " + line)
	s.rep.Notes = append(s.rep.Notes, line)
}

// runnerEnv marks the scenario runner, the only child PID 1 starts.
const runnerEnv = "NTPTOOL_E2E_RUNNER"

// pid1 is the guest's PID 1: it mounts the pseudo file systems, proves
// this is the guest, starts the scenario runner (this binary again) and
// reaps every process until the runner exits, then powers off. A real
// init reaps the orphans reparented to it; without that, a DHCP client
// that a daemon restarted and that died would stay a zombie, which
// kill(pid, 0) calls alive (the renewers and the lab ask so). The runner
// is not PID 1, so its own children are its own to wait for.
func pid1() {
	bootToInit := boottime()
	defer poweroff()
	if err := mountPseudo(); err != nil {
		fmt.Println("e2e-guest:", err)
		return
	}
	if err := guard.Check(guard.OS{}); err != nil {
		fmt.Println("e2e-guest:", err)
		return
	}
	runner := exec.Command(guard.InitPath)
	runner.Env = append(os.Environ(), runnerEnv+"=1", fmt.Sprintf("NTPTOOL_E2E_BOOT_TO_INIT=%.9f", bootToInit))
	runner.Stdin, runner.Stdout, runner.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := runner.Start(); err != nil {
		fmt.Println("e2e-guest: start the runner:", err)
		return
	}
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid == runner.Process.Pid {
			return
		}
	}
}

// mountPseudo mounts what the guard and the scenarios read.
func mountPseudo() error {
	for _, m := range []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/tmp", "tmpfs"}, {"tmpfs", "/run", "tmpfs"}, {"tracefs", "/sys/kernel/tracing", "tracefs"},
	} {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	return nil
}

// runScenario is the runner: it boots the rest (modules, network), runs
// the Spec's scenario and writes the report on the console.
func runScenario() {
	bootToInit, _ := strconv.ParseFloat(os.Getenv("NTPTOOL_E2E_BOOT_TO_INIT"), 64)
	s := &g{rep: report.New("unknown")}
	s.rep.Set("boot_to_init_seconds", bootToInit)
	defer func() {
		if r := recover(); r != nil {
			s.rep.Error = fmt.Sprintf("guest init panic: %v\n%s", r, debug.Stack())
		}
		if err := report.Encode(os.Stdout, s.rep); err != nil {
			fmt.Println("e2e-guest: cannot encode report:", err)
		}
	}()
	if err := s.boot(); err != nil {
		s.rep.Error = err.Error()
		return
	}
	s.rep.Set("init_ready_seconds", boottime())
	run, ok := scenarios[s.spec.Scenario]
	if !ok {
		s.rep.Error = fmt.Sprintf("unknown scenario %q", s.spec.Scenario)
		return
	}
	if err := run(s); err != nil {
		s.rep.Error = err.Error()
	}
	s.rep.Set("guest_uptime_seconds", boottime())
}

func (s *g) boot() error {
	// The proof comes first: nothing below may run outside the guest
	// (PID 1 mounted /proc and checked it too).
	if err := guard.Check(guard.OS{}); err != nil {
		return err
	}
	b, err := os.ReadFile(report.SpecPath)
	if err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	if err := json.Unmarshal(b, &s.spec); err != nil {
		return fmt.Errorf("parse spec: %w", err)
	}
	s.rep.Scenario = s.spec.Scenario
	s.clock = newClock(guard.OS{}, unixKernel{})
	cs, _ := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource")
	s.rep.Facts["clocksource"] = strings.TrimSpace(string(cs))
	kv, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	s.rep.Facts["kernel"] = strings.TrimSpace(string(kv))
	for _, d := range []string{"/var/run", "/var/lib/dhcp", "/var/lib/chrony", "/var/lib/ntptool", "/var/log/ntptool", "/run/chrony", "/run/ntptool", "/etc", "/var/lib/dhcpcd", "/run/dhcpcd"} {
		_ = os.MkdirAll(d, 0o755) // as on Debian: /var/log too, which the run user must traverse
	}
	// busybox provides the shell utilities; dash is /bin/sh because
	// Debian's busybox runs its own applets before $PATH (its ip lacks
	// valid_lft, and dhclient-script needs iproute2's).
	if out, err := exec.Command("/bin/busybox", "--install", "-s", "/bin").CombinedOutput(); err != nil {
		return fmt.Errorf("busybox --install: %v: %s", err, out)
	}
	if _, err := os.Stat("/bin/dash"); err == nil {
		_ = os.Remove("/bin/sh")
		_ = os.Symlink("dash", "/bin/sh")
	}
	// Nor is busybox's setpriv util-linux's (it has no --bounding-set):
	// as on Debian, /bin/setpriv is util-linux's, which the daemon's
	// DHCP renewer finds on its PATH to restart a client without
	// CAP_SYS_TIME.
	if _, err := os.Stat(setprivBin); err == nil {
		_ = os.Remove("/bin/setpriv")
		_ = os.Symlink(setprivBin, "/bin/setpriv")
	}
	t := mono()
	if err := loadModules(); err != nil {
		return err
	}
	s.rep.Set("modules_seconds", mono()-t)
	if err := s.network(); err != nil {
		return err
	}
	s.note("booted: init at %.3f s, clocksource %s", s.rep.Metrics["boot_to_init_seconds"], s.rep.Facts["clocksource"])
	return nil
}

// loadModules loads the kernel modules listed, dependencies first, in
// modules.order (the harness resolved the order from their modinfo).
func loadModules() error {
	b, err := os.ReadFile(modulesOrder)
	if err != nil {
		return fmt.Errorf("modules: %w", err)
	}
	for _, name := range strings.Fields(string(b)) {
		f, err := os.Open(modulesDir + "/" + name + ".ko")
		if err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("finit_module %s: %w", name, err)
		}
	}
	return nil
}

func (s *g) network() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat("/sys/class/net/eth0"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("eth0 did not appear within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "set", "eth0", "up"},
		// On-link only, no default route: the guest reaches the host's
		// loopback (10.0.2.2) and nothing else.
		{"addr", "add", guestCIDR, "dev", "eth0"},
	} {
		if out, err := exec.Command(ipBin, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// checkGuest is guard.Check on the running system, for code that starts a
// program allowed to change the clock.
func (s *g) checkGuest() error { return guard.Check(guard.OS{}) }

func poweroff() {
	if os.Getpid() != 1 {
		return // the runner: PID 1 powers off once it exits
	}
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
