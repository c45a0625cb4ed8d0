package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// scenarioDHCPHooks is the positive half of scenarios 3 (dhclient) and 4
// (udhcpc, dhcpcd): ntptool's own steps run its pre/post-step hooks (the
// built-in DHCP renewer), so the address survives 3 lease periods after a
// step back 1 h and after a step forward 1 day; `ntptool renew` renews at
// once; and a step made by someone else (`date -s`) is detected by the
// running daemon, which renews within a second.
//
// It needs `ntptool step`, `ntptool renew` and `ntptool run`; the harness
// skips it until they exist.
func scenarioDHCPHooks(s *g) error {
	lab, err := s.startDHCPLab()
	if lab != nil {
		defer lab.stop()
	}
	if err != nil {
		return err
	}
	cidr, _, err := lab.waitBound(30 * time.Second)
	if err != nil {
		return err
	}
	s.rep.Facts["address"] = cidr
	if err := os.WriteFile(ntptoolConf, []byte(s.spec.Config), 0o644); err != nil {
		return err
	}
	lease := float64(max(s.spec.LeaseSeconds, 120))
	for _, ph := range []struct{ name, by string }{{"back_1h", "-1h"}, {"forward_1d", "+24h"}} {
		if err := s.checkGuest(); err != nil {
			return err
		}
		a0 := acks()
		out, err := exec.Command(ntptoolBin, "step", "--by", ph.by, "--config", ntptoolConf).CombinedOutput()
		s.rep.Facts["step_"+ph.name+"_output"] = tail(string(out), 20)
		if err != nil {
			return fmt.Errorf("ntptool step --by %s: %v: %s", ph.by, err, firstLineOf(string(out)))
		}
		s.rep.Set("step_"+ph.name+"_acks", float64(acks()-a0))
		tWatch := mono()
		lost, at := lab.watchAddress(time.Duration((3*lease + 10) * float64(time.Second)))
		s.rep.Facts["lost_"+ph.name] = strconv.FormatBool(lost)
		s.rep.Set("survived_"+ph.name+"_seconds", at-tWatch)
		s.note("after ntptool step --by %s: lost=%v", ph.name, lost)
	}
	// ntptool renew: a DHCPACK must follow within a second.
	if lat, err := s.ackWithin(2*time.Second, func() error {
		return exec.Command(ntptoolBin, "renew", "--config", ntptoolConf).Run()
	}); err == nil {
		s.rep.Set("renew_ack_seconds", lat)
	} else {
		s.rep.Facts["renew_error"] = err.Error()
	}
	// An external step while the daemon runs.
	cmd, err := s.startDaemon([]string{ntptoolDmn, "run", "--config", ntptoolConf})
	if err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(5 * time.Second)
	if err := s.checkGuest(); err != nil {
		return err
	}
	lat, err := s.ackWithin(5*time.Second, func() error {
		target := time.Now().Add(time.Hour).Unix()
		return exec.Command("/bin/busybox", "date", "-s", "@"+strconv.FormatInt(target, 10)).Run()
	})
	if err != nil {
		s.rep.Facts["external_step_error"] = err.Error()
	} else {
		s.rep.Set("external_step_ack_seconds", lat)
	}
	s.rep.Facts["daemon_log"] = tailFile(daemonLog, 60)
	return nil
}

// ackWithin runs act and measures how long until dnsmasq logs a new
// DHCPACK (guest monotonic seconds).
func (s *g) ackWithin(d time.Duration, act func() error) (float64, error) {
	a0 := acks()
	t0 := mono()
	if err := act(); err != nil {
		return 0, err
	}
	if err := waitForFine(d, func() bool { return acks() > a0 }); err != nil {
		return 0, fmt.Errorf("no DHCPACK within %v", d)
	}
	return mono() - t0, nil
}

func waitForFine(d time.Duration, cond func() bool) error {
	end := mono() + d.Seconds()
	for !cond() {
		if mono() > end {
			return fmt.Errorf("timeout")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func firstLineOf(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
