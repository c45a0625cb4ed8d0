package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// scenarioLeastPriv is issue 10's scenario 6: ntptool run started as root
// with [run] user = "ntptool" keeps only CAP_SYS_TIME (every thread: Linux
// keeps credentials per thread) and still disciplines the clock as in
// scenario 1; the kernel's state is then TIME_OK with honest error
// bounds; after SIGTERM the drift file holds the learned frequency, and a
// restart after a simulated reboot (the kernel's frequency back to the
// injected error) starts from it, with no frequency transient.
func scenarioLeastPriv(s *g) error {
	// A fresh system's: the daemon's directories do not exist yet, so
	// that ntptool run creates them for its user before the switch (the
	// boot made them for root, as an administrator might; the daemon
	// leaves existing ones as they are and says the user cannot write
	// them).
	for _, f := range []string{ntptoolDrft, auditJournal, controlSocket} {
		if err := os.Remove(filepath.Dir(f)); err != nil {
			return fmt.Errorf("least-priv: %w", err)
		}
	}
	d := ntptoolDaemon()
	before := d.BeforeStop
	d.BeforeStop = func(s *g) {
		before(s)
		s.procCreds("daemon", s.daemonPID)
		// The hook helper, started before the switch: root without
		// CAP_SYS_TIME.
		if kids := childrenOf(s.daemonPID); len(kids) > 0 {
			s.procCreds("helper", kids[0])
			s.rep.Set("daemon_children", float64(len(kids)))
		}
	}
	if err := s.discipline(d); err != nil {
		return err
	}
	return s.restartFromDrift(d)
}

// procCreds records what /proc/PID/status says of a process's user and
// capabilities, as facts prefixed with who, and how many of its threads
// have other effective capabilities than the process.
func (s *g) procCreds(who string, pid int) {
	st, err := procStatus(pid)
	if err != nil {
		s.rep.Facts[who+"_status_error"] = err.Error()
		return
	}
	for _, k := range []string{"Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"} {
		s.rep.Facts[who+"_"+strings.ToLower(k)] = st[k]
	}
	if f := strings.Fields(st["Uid"]); len(f) > 1 {
		s.rep.Facts[who+"_euid"] = f[1]
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	other := 0
	for _, t := range tasks {
		tid, err := strconv.Atoi(filepath.Base(t))
		if err != nil {
			continue
		}
		ts, err := procStatusAt(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
		if err == nil && (ts["CapEff"] != st["CapEff"] || ts["Uid"] != st["Uid"]) {
			other++
		}
	}
	s.rep.Set(who+"_threads", float64(len(tasks)))
	s.rep.Set(who+"_threads_with_other_creds", float64(other))
}

func procStatus(pid int) (map[string]string, error) {
	return procStatusAt("/proc/" + strconv.Itoa(pid) + "/status")
}

// procStatusAt parses a /proc status file: "Key:\tvalue" lines.
func procStatusAt(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseProcStatus(string(b)), nil
}

func parseProcStatus(text string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}

// statusFrequency is the daemon's frequency correction as `ntptool status
// --json` reports it (ppm).
func statusFrequency() (float64, error) {
	out, err := exec.Command(ntptoolBin, "status", "--json", "--config", ntptoolConf).Output()
	if err != nil {
		return 0, err
	}
	var v struct {
		Status struct {
			FrequencyPPM *float64 `json:"frequency_ppm"`
		} `json:"status"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return 0, err
	}
	if v.Status.FrequencyPPM == nil {
		return 0, errors.New("ntptool status: no frequency_ppm")
	}
	return *v.Status.FrequencyPPM, nil
}

// childrenOf lists the live processes whose parent is pid.
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if st, ok := parseStat(b); ok && st.ppid == pid && st.state != 'Z' {
			out = append(out, p)
		}
	}
	return out
}

// restartFromDrift simulates a reboot (the kernel's frequency back to the
// injected error; the clock keeps its time, as the RTC would give it to
// the second) and starts the daemon again: it must set the drift file's
// frequency at once, not relearn it, and hold the offset.
func (s *g) restartFromDrift(d daemon) error {
	drift, ok := s.rep.Metric("drift_freq_ppm")
	if !ok {
		return errors.New("no drift file after SIGTERM: nothing to restart from")
	}
	firstLog := s.rep.Facts["daemon_log"]
	if err := s.checkGuest(); err != nil {
		return err
	}
	if err := s.clock.SetFrequency(s.spec.InjectFreqPPM); err != nil {
		return err
	}
	if at, err := s.query(); err == nil {
		s.rep.Set("restart_offset_at_start_seconds", at.Offset)
	}
	cmd, err := s.startDaemon(d.Argv)
	if err != nil {
		return err
	}
	t0 := mono()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			s.rep.Facts["restart_daemon_exit"] = exitString(err)
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			s.rep.Facts["restart_daemon_exit"] = "killed after SIGTERM timeout"
		}
		s.rep.Facts["restart_daemon_log"] = s.daemonLogTail()
		s.rep.Facts["daemon_log"] = firstLog
	}
	defer stop()
	// When the daemon first sets the kernel's frequency, and to what.
	err = waitForFine(10*time.Second, func() bool {
		tx, err := readTimex()
		if err != nil || math.Abs(tx.FreqPPM-s.spec.InjectFreqPPM) < 0.01 {
			return false
		}
		s.rep.Set("restart_freq_set_seconds", mono()-t0)
		s.rep.Set("restart_first_freq_ppm", tx.FreqPPM)
		s.rep.Set("restart_first_freq_vs_drift_ppm", tx.FreqPPM-drift)
		return true
	})
	if err != nil {
		s.rep.Facts["restart_freq_error"] = "the kernel's frequency unchanged 10 s after the restart"
	}
	interval := seconds(s.spec.SampleSeconds, 2*time.Second)
	end := t0 + seconds(s.spec.RestartSeconds, 120*time.Second).Seconds()
	var ss []sample
	maxOff, maxDev, maxKernel := 0.0, 0.0, 0.0
	nFreq := 0
	for next := mono() + interval.Seconds(); next < end; next += interval.Seconds() {
		if wait := next - mono(); wait > 0 {
			select {
			case err := <-exited:
				exited <- err
				return fmt.Errorf("ntptool run exited %.1f s after its restart: %v", mono()-t0, err)
			case <-time.After(time.Duration(wait * float64(time.Second))):
			}
		}
		if sm, err := s.query(); err == nil {
			ss = append(ss, sm)
			maxOff = math.Max(maxOff, math.Abs(sm.Offset))
		}
		// The daemon's frequency (its status): the kernel's rate besides
		// holds the slews of the offsets in progress.
		if f, err := statusFrequency(); err == nil {
			maxDev = math.Max(maxDev, math.Abs(f-drift))
			nFreq++
		}
		if tx, err := readTimex(); err == nil {
			maxKernel = math.Max(maxKernel, math.Abs(tx.FreqPPM-drift))
		}
	}
	s.addSeries("restart_offset", ss, t0)
	s.rep.Set("restart_max_abs_offset_seconds", maxOff)
	if nFreq > 0 {
		s.rep.Set("restart_max_freq_vs_drift_ppm", maxDev)
	}
	s.rep.Set("restart_max_kernel_rate_vs_drift_ppm", maxKernel)
	s.rep.Set("restart_samples", float64(len(ss)))
	s.procCreds("restart", s.daemonPID)
	return nil
}
