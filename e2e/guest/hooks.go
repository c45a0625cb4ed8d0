package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ntptool/ntptool/e2e/report"
	"golang.org/x/sys/unix"
)

// watchFor is how long a DHCP scenario with hooks watches the address
// after a step: the Spec's WatchSeconds, else 3 lease periods and 10 s.
func (s *g) watchFor() time.Duration {
	if s.spec.WatchSeconds > 0 {
		return seconds(s.spec.WatchSeconds, 0)
	}
	lease := float64(max(s.spec.LeaseSeconds, 120))
	return time.Duration((3*lease + 10) * float64(time.Second))
}

// scenarioDHCPHooks is the positive half of scenarios 3 (dhclient) and 4
// (udhcpc, dhcpcd) for ntptool's own steps: `ntptool step` runs its
// pre/post-step hooks (the built-in DHCP renewer), so the address survives
// 3 lease periods after a step back 1 h and after a step forward 1 day.
//
// It needs `ntptool step`; the harness skips it until it exists.
func scenarioDHCPHooks(s *g) error {
	lab, err := s.startDHCPLab()
	if lab != nil {
		defer lab.stop()
	}
	if err != nil {
		return err
	}
	cidr, lft, err := lab.waitBound(30 * time.Second)
	if err != nil {
		return err
	}
	s.note("%s bound %s valid_lft %d", lab.client, cidr, lft)
	s.rep.Facts["address"] = cidr
	s.rep.Set("valid_lft_at_bind_seconds", float64(lft))
	if err := os.WriteFile(ntptoolConf, []byte(s.spec.Config), 0o644); err != nil {
		return err
	}
	for _, by := range s.spec.Steps() {
		ph := struct{ name, by string }{report.StepPhase(by), by}
		if err := s.checkGuest(); err != nil {
			return err
		}
		before, errBefore := s.query()
		a0 := acks()
		out, err := exec.Command(ntptoolBin, "step", "--by", ph.by, "--config", ntptoolConf).CombinedOutput()
		s.rep.Facts["step_"+ph.name+"_output"] = tail(string(out), 20)
		s.rep.Facts["step_"+ph.name+"_exit"] = exitCode(err)
		if err != nil && exitCode(err) != "3" { // 3: stepped, a hook failed
			return fmt.Errorf("ntptool step --by %s: %v: %s", ph.by, err, firstLineOf(string(out)))
		}
		tWatch := mono()
		if after, err := s.query(); err == nil && errBefore == nil {
			s.rep.Set("step_"+ph.name+"_seconds", before.Offset-after.Offset)
		}
		s.rep.Set("step_"+ph.name+"_acks", float64(acks()-a0))
		lost, at := lab.watchAddress(s.watchFor())
		s.rep.Facts["lost_"+ph.name] = strconv.FormatBool(lost)
		s.rep.Set("survived_"+ph.name+"_seconds", at-tWatch)
		s.note("after ntptool step --by %s: %d ACKs, lost=%v after %.0f s", ph.by, acks()-a0, lost, at-tWatch)
		if lost {
			break
		}
	}
	s.labFacts(lab)
	if b, err := os.ReadFile(auditJournal); err == nil {
		s.rep.Facts["audit_journal"] = tail(string(b), 40)
	}
	return nil
}

// exitCode is a command's exit status as a number ("0" for success), or
// the error itself if it did not run.
func exitCode(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "0"
	case errors.As(err, &ee):
		return strconv.Itoa(ee.ExitCode())
	default:
		return err.Error()
	}
}

// ackWindow is how long a DHCPACK is waited for: well past the 1 s
// expected, so that a slow renewal is measured, not only failed.
const ackWindow = 15 * time.Second

// externalStepBy is the step made behind the daemon's back: backward, the
// direction in which dhclient's wall-clock timers never fire (scenario
// 3's negative control shows the address lost without a renewal).
const externalStepBy = -time.Hour

// scenarioDHCPExternal is the part of scenarios 3 and 4 that needs no
// `ntptool step`: `ntptool renew` renews at once, and a step made by
// someone else (`date -s`, back 1 h) under a running `ntptool run` is
// detected by the daemon's watcher (a timerfd with
// TFD_TIMER_CANCEL_ON_SET), whose external-step hooks renew within a
// second; the address then outlives valid_lft.
func scenarioDHCPExternal(s *g) error {
	lab, err := s.startDHCPLab()
	if lab != nil {
		defer lab.stop()
	}
	if err != nil {
		return err
	}
	cidr, lft, err := lab.waitBound(30 * time.Second)
	if err != nil {
		return err
	}
	tBound := mono()
	s.note("%s bound %s valid_lft %d", lab.client, cidr, lft)
	s.rep.Facts["address"] = cidr
	s.rep.Set("valid_lft_at_bind_seconds", float64(lft))
	if err := os.WriteFile(ntptoolConf, []byte(s.spec.Config), 0o644); err != nil {
		return err
	}
	// The client's own renewal, by hand: how soon a DHCPACK can come.
	applied := lab.scriptRenewals()
	if lat, err := s.ackWithin(ackWindow, lab.renewByHand); err != nil {
		s.rep.Facts["by_hand_error"] = err.Error()
	} else {
		s.rep.Set("by_hand_ack_seconds", lat)
		s.note("%s renewed by hand: DHCPACK after %.3f s", lab.client, lat)
	}
	// udhcpc bound again before ntptool renew, which awaits a renewal in
	// flight rather than signal it (a second SIGUSR1 would deconfigure the
	// address): once udhcpc missed the DHCPACK above and retried 3 s
	// later, and ntptool renew measured that retry.
	if lab.client == "udhcpc" {
		t0 := mono()
		if err := waitForFine(ackWindow, func() bool { return lab.scriptRenewals() > applied }); err != nil {
			s.rep.Facts["by_hand_applied_error"] = "udhcpc's script reported no renewal"
		}
		s.note("udhcpc's script reported the renewal %.3f s after the DHCPACK", mono()-t0)
	}
	// ntptool renew: a DHCPACK must follow within a second of that.
	var renewOut []byte
	lat, err := s.ackWithin(ackWindow, func() error {
		var err error
		renewOut, err = exec.Command(ntptoolBin, "renew", "--json", "--config", ntptoolConf).CombinedOutput()
		return err
	})
	s.rep.Facts["renew_output"] = tail(string(renewOut), 40)
	if err != nil {
		s.rep.Facts["renew_error"] = err.Error()
	} else {
		s.rep.Set("renew_ack_seconds", lat)
	}
	s.note("ntptool renew: DHCPACK after %.3f s (err %v)", lat, err)
	// An external step while the daemon runs. It keeps CAP_SYS_TIME (it
	// disciplines the guest's clock; startDaemon checks the guard).
	cmd, err := s.startDaemon([]string{ntptoolDmn, "run", "--config", ntptoolConf})
	if err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		s.rep.Facts["daemon_log"] = s.daemonLogTail()
		if b, err := os.ReadFile("/tmp/cpu.prof"); err == nil {
			s.rep.Facts["cpuprof"] = base64.StdEncoding.EncodeToString(b)
		}
	}()
	// Synchronised first: the step must find a daemon at work, not one
	// still starting (its watcher is up once it answers).
	tStart := mono()
	out, err := exec.Command(ntptoolBin, "wait-sync", "--timeout", "60s", "--config", ntptoolConf).CombinedOutput()
	s.rep.Facts["wait_sync"] = strings.TrimSpace(string(out))
	if err != nil {
		return fmt.Errorf("ntptool run not synchronised within 60 s: %v: %s", err, firstLineOf(string(out)))
	}
	s.rep.Set("daemon_sync_seconds", mono()-tStart)
	if err := s.checkGuest(); err != nil {
		return err
	}
	before, errBefore := s.query()
	tStep := mono()
	lat, err = s.ackWithin(ackWindow, func() error {
		target := time.Now().Add(externalStepBy).Unix()
		tStep = mono()
		return exec.Command("/bin/busybox", "date", "-s", "@"+strconv.FormatInt(target, 10)).Run()
	})
	if err != nil {
		s.rep.Facts["external_step_error"] = err.Error()
	} else {
		s.rep.Set("external_step_ack_seconds", lat)
	}
	if after, err := s.query(); err == nil && errBefore == nil {
		s.rep.Set("external_step_seconds", before.Offset-after.Offset)
	}
	s.note("date -s %v: DHCPACK after %.3f s (err %v)", externalStepBy, lat, err)
	lost, at := lab.watchAddress(s.watchFor())
	s.rep.Facts["lost_external"] = strconv.FormatBool(lost)
	s.rep.Set("survived_external_seconds", at-tStep)
	s.rep.Set("external_step_after_bind_seconds", tStep-tBound)
	// When the daemon saw it: the stamp of its log line.
	if t, ok := logStamp(tailFile(daemonLog, daemonLogLines), `msg="clock step detected"`, "own=false", tStep); ok {
		s.rep.Set("external_detect_seconds", t-tStep)
	}
	s.labFacts(lab)
	s.note("after date -s: address lost=%v after %.0f s", lost, at-tStep)
	// What the daemon and the kernel say of a clock an hour off that the
	// daemon will not correct (beyond [step] panic).
	st, _ := exec.Command(ntptoolBin, "status", "--json", "--config", ntptoolConf).CombinedOutput()
	s.rep.Facts["ntptool_status"] = tail(string(st), 40)
	if tx, err := readTimex(); err == nil {
		s.rep.Facts["adjtimex_state"] = stateName(tx.State)
		s.rep.Set("adjtimex_maxerror_us", float64(tx.MaxErrorUS))
	}
	if off, err := s.query(); err == nil {
		s.rep.Set("offset_at_end_seconds", off.Offset)
	}
	select {
	case err := <-exited:
		exited <- err
		s.rep.Facts["daemon_exited_early"] = exitString(err)
	default:
	}
	return nil
}

// ackWithin runs act and measures how long until dnsmasq logs a new
// DHCPACK (guest monotonic seconds), watching while act runs (ntptool
// renew returns only once the lifetimes show the renewal). The log is
// read again when inotify says it grew, not on a timer: on the guest's
// one emulated CPU, a poll every 10 ms cost the renewals being timed a
// third of it.
func (s *g) ackWithin(d time.Duration, act func() error) (float64, error) {
	cpu0 := sampleCPU()
	defer func() { s.note("CPU until the DHCPACK: %s", cpuUse(cpu0, sampleCPU())) }()
	grew, stop := watchWrites(dnsmasqLog)
	defer stop()
	a0 := acks()
	t0 := mono()
	done := make(chan error, 1)
	go func() { done <- act() }()
	var actErr error
	running := true
	deadline := time.After(d)
	for {
		if acks() > a0 {
			lat := mono() - t0
			if running {
				actErr = <-done
			}
			return lat, actErr
		}
		select {
		case actErr = <-done:
			running = false
			if actErr != nil {
				return 0, actErr
			}
		case <-grew:
		case <-deadline:
			if running {
				<-done
			}
			return 0, fmt.Errorf("no DHCPACK within %v", d)
		}
	}
}

// watchWrites signals each write to path (inotify IN_MODIFY). Without
// inotify it signals every 250 ms, a poll. stop ends the watch.
func watchWrites(path string) (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	signal := func() {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err == nil {
		if _, err = unix.InotifyAddWatch(fd, path, unix.IN_MODIFY); err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		t := time.NewTicker(250 * time.Millisecond)
		quit := make(chan struct{})
		go func() {
			for {
				select {
				case <-t.C:
					signal()
				case <-quit:
					return
				}
			}
		}()
		return c, func() { t.Stop(); close(quit) }
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: Close ends a Read
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			signal()
		}
	}()
	return c, func() { f.Close() }
}

// logStamp is the guest time stamp (see startDaemon) of the first line of
// the daemon's log at or after from that holds every one of words.
func logStamp(log, msg, word string, from float64) (float64, bool) {
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, msg) || !strings.Contains(l, word) {
			continue
		}
		st, rest, ok := strings.Cut(strings.TrimPrefix(l, "["), "]")
		if !ok || rest == "" {
			continue
		}
		t, err := strconv.ParseFloat(strings.TrimSpace(st), 64)
		if err == nil && t >= from {
			return t, true
		}
	}
	return 0, false
}

func firstLineOf(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
