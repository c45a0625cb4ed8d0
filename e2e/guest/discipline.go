package main

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ntptool/ntptool/e2e/ktrace"
	"github.com/ntptool/ntptool/e2e/report"
)

// daemon is a clock-disciplining program under test.
type daemon struct {
	// Comm is its process name in the kernel trace (the executable's
	// base name: ntptool's daemon runs as the symlink ntptoold so that
	// the independent ntptool queries are counted apart).
	Comm string
	// Argv is its command line, run in the foreground.
	Argv []string
	// ConfigPath is where Spec.Config is written.
	ConfigPath string
	// DriftPath is its drift file, read after it stops.
	DriftPath string
	// BeforeStop runs while it still runs, after the measurement (status
	// queries of the control socket).
	BeforeStop func(s *g)
	// AfterStop runs once it has exited (files it leaves).
	AfterStop func(s *g)
}

const (
	chronyConf  = "/etc/chrony.conf"
	chronyDrift = "/var/lib/chrony/chrony.drift"
	ntptoolConf = "/etc/ntptool.toml"
	// auditJournal is the configurations' [audit] journal.
	auditJournal = "/var/log/ntptool/audit.jsonl"
	// controlSocket is the configurations' [control] socket.
	controlSocket = "/run/ntptool/control.sock"
	ntptoolDrft   = "/var/lib/ntptool/drift"
	ntptoolDmn    = "/bin/ntptoold" // symlink to ntptool
	daemonLog     = "/tmp/daemon.log"
)

func scenarioChrony(s *g) error {
	return s.discipline(daemon{
		Comm: "chronyd",
		// -d: foreground, log to stderr. -u root: no _chrony user here.
		// chronyd keeps CAP_SYS_TIME: it disciplines the guest's own clock,
		// which is the point of the comparison (guard checked at boot, and
		// again in startDaemon).
		Argv:       []string{"/usr/sbin/chronyd", "-d", "-u", "root", "-f", chronyConf},
		ConfigPath: chronyConf,
		DriftPath:  chronyDrift,
	})
}

// scenarioNtptoolDiscipline runs ntptool's daemon (scenarios 1, 2 and the
// ntptool half of 5: they differ only in the Spec).
func scenarioNtptoolDiscipline(s *g) error {
	return s.discipline(ntptoolDaemon())
}

// ntptoolDaemon is ntptool run as the discipline scenarios start it.
func ntptoolDaemon() daemon {
	return daemon{
		Comm:       "ntptoold",
		Argv:       []string{ntptoolDmn, "run", "--config", ntptoolConf},
		ConfigPath: ntptoolConf,
		DriftPath:  ntptoolDrft,
		BeforeStop: func(s *g) {
			for _, c := range [][]string{{"status", "--json"}, {"wait-sync", "--timeout", "1s"}} {
				out, err := exec.Command(ntptoolBin, append(c, "--config", ntptoolConf)...).CombinedOutput()
				key := "ntptool_" + strings.ReplaceAll(c[0], "-", "_")
				s.rep.Facts[key] = tail(string(out), 40)
				s.rep.Facts[key+"_exit"] = exitString(err)
			}
		},
		AfterStop: func(s *g) {
			var ran []string
			for _, h := range []string{"pre", "post"} {
				if _, err := os.Stat("/tmp/e2e-" + h + "-step"); err == nil {
					ran = append(ran, h)
				}
			}
			s.rep.Facts["hooks_ran"] = strings.Join(ran, ",")
			if b, err := os.ReadFile(auditJournal); err == nil {
				s.rep.Facts["audit_journal"] = tail(string(b), 40)
			}
		},
	}
}

// discipline: measure the guest's own rate, inject the Spec's offset and
// frequency error, run the daemon for RunSeconds while measuring the offset
// independently, then read the kernel state, stop the daemon and count its
// clock calls and polls in the kernel trace.
func (s *g) discipline(d daemon) error {
	interval := seconds(s.spec.SampleSeconds, 2*time.Second)
	w := seconds(s.spec.RateWindowSeconds, 15*time.Second)
	if _, err := s.query(); err != nil {
		return fmt.Errorf("first query to the host's server: %w", err)
	}
	free, err := s.measureRate("free", seconds(s.spec.FreeRunSeconds, 60*time.Second), w, time.Second)
	if err != nil {
		return err
	}
	if err := os.WriteFile(d.ConfigPath, []byte(s.spec.Config), 0o644); err != nil {
		return err
	}
	traceOK := s.startTrace()
	// The guest boots with the host's time to the RTC's second: step by
	// the injected offset plus the offset measured now, so that the
	// daemon starts exactly InjectStepSeconds ahead of the host.
	before, err := s.query()
	if err != nil {
		return err
	}
	if err := s.clock.Step(time.Duration((s.spec.InjectStepSeconds + before.Offset) * float64(time.Second))); err != nil {
		return err
	}
	if err := s.clock.SetFrequency(s.spec.InjectFreqPPM); err != nil {
		return err
	}
	s.rep.Set("offset_before_inject_seconds", before.Offset)
	if at, err := s.query(); err == nil {
		s.rep.Set("offset_at_start_seconds", at.Offset)
	}
	s.note("injected %+.3f s (host − guest was %+.3f s) and %+.1f ppm; starting %s",
		s.spec.InjectStepSeconds, before.Offset, s.spec.InjectFreqPPM, d.Comm)
	cmd, err := s.startDaemon(d.Argv)
	if err != nil {
		return err
	}
	t0 := mono()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	runFor := seconds(s.spec.RunSeconds, 600*time.Second)
	var ss, rates []sample
	end := t0 + runFor.Seconds()
	for next := t0 + 1; next < end; next += interval.Seconds() {
		if wait := next - mono(); wait > 0 {
			select {
			case err := <-exited:
				s.rep.Facts["daemon_log"] = s.daemonLogTail()
				return fmt.Errorf("%s exited after %.1f s: %v", d.Comm, mono()-t0, err)
			case <-time.After(time.Duration(wait * float64(time.Second))):
			}
		}
		if sm, err := s.query(); err == nil {
			ss = append(ss, sm)
		}
		// The kernel's rate correction (tick and frequency: the daemon's
		// frequency plus any slew), read only, beside each offset.
		if tx, err := readTimex(); err == nil {
			rates = append(rates, sample{T: mono(), Offset: tx.FreqPPM})
		}
	}
	tEnd := mono()
	s.addSeries("offset", ss, t0)
	s.addSeries("kernel_rate_ppm", rates, t0)
	tx, err := readTimex()
	if err != nil {
		return err
	}
	if d.BeforeStop != nil {
		d.BeforeStop(s)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		s.rep.Facts["daemon_exit"] = exitString(err)
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		s.rep.Facts["daemon_exit"] = "killed after SIGTERM timeout"
	}
	s.rep.Facts["daemon_log"] = s.daemonLogTail()
	if d.AfterStop != nil {
		d.AfterStop(s)
	}
	if b, err := os.ReadFile(d.DriftPath); err == nil {
		s.rep.Facts["drift_file"] = strings.TrimSpace(string(b))
		// Both daemons write the frequency correction (ppm) first.
		if f := strings.Fields(string(b)); len(f) > 0 {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				s.rep.Set("drift_freq_ppm", v)
				s.rep.Set("drift_freq_error_ppm", v+free.RatePPM)
			}
		}
	} else {
		s.rep.Facts["drift_file_error"] = err.Error()
	}
	s.rep.Facts["adjtimex_state"] = stateName(tx.State)
	s.rep.Set("adjtimex_status", float64(tx.Status))
	s.rep.Set("adjtimex_maxerror_us", float64(tx.MaxErrorUS))
	s.rep.Set("adjtimex_esterror_us", float64(tx.EstErrorUS))
	s.rep.Set("final_freq_ppm", tx.FreqPPM)
	s.rep.Set("freq_error_ppm", tx.FreqPPM+free.RatePPM)
	summarise(s.rep, ss, t0, tEnd, seconds(s.spec.RMSWindowSeconds, 300*time.Second).Seconds())
	if inj := math.Abs(s.spec.InjectStepSeconds); inj > 0 && inj < 1 {
		// A slew: its rate while the offset goes from 90 % to 10 %.
		var mid []sample
		for _, x := range ss {
			if a := math.Abs(x.Offset); a < 0.9*inj && a > 0.1*inj {
				mid = append(mid, x)
			}
		}
		if f, err := fitRate(mid); err == nil {
			s.rep.Set("slew_rate_ppm", hostAxisPPM(f.RatePPM)-free.RatePPM)
			s.rep.Set("slew_rate_se_ppm", f.StdErrPPM)
			s.rep.Set("slew_span_seconds", f.Span)
			// What the kernel was told meanwhile: the daemon's slew plus
			// its frequency.
			var sum float64
			n := 0
			for _, r := range rates {
				if r.T >= mid[0].T && r.T <= mid[len(mid)-1].T {
					sum += r.Offset
					n++
				}
			}
			if n > 0 {
				s.rep.Set("slew_kernel_rate_ppm", sum/float64(n))
			}
		}
	}
	if traceOK {
		events, lost, err := ktrace.Read(ktrace.Dir)
		if err != nil {
			return err
		}
		s.rep.Set("trace_lost_events", float64(lost))
		all := ktrace.Count(events, d.Comm, t0-1, math.Inf(1))
		s.rep.Set("steps", float64(all.Steps))
		s.rep.Set("adjtimex_writes_total", float64(all.AdjtimexWrites))
		s.rep.Set("polls_total", float64(all.UDPSends))
		var steps []string
		for _, e := range events {
			if e.Comm == d.Comm && e.IsStep() {
				if len(steps) == 0 {
					s.rep.Set("first_step_seconds", e.T-t0)
				}
				steps = append(steps, fmt.Sprintf("%.3f s: %s modes=%#x step=%+.6f s", e.T-t0, e.Name, e.Modes, float64(e.StepNS)/1e9))
			}
		}
		s.rep.Facts["steps_detail"] = strings.Join(steps, "\n")
		win := tEnd - seconds(s.spec.RMSWindowSeconds, 300*time.Second).Seconds()
		c := ktrace.Count(events, d.Comm, win, tEnd)
		s.rep.Set("window_adjtimex_writes", float64(c.AdjtimexWrites))
		s.rep.Set("window_adjtimex_reads", float64(c.AdjtimexReads))
		s.rep.Set("window_polls", float64(c.UDPSends))
		s.rep.Facts["window_adjtimex_modes"] = modesHistogram(events, d.Comm, win, tEnd)
		if c.UDPSends > 0 {
			s.rep.Set("adjtimex_writes_per_poll", float64(c.AdjtimexWrites)/float64(c.UDPSends))
			s.rep.Set("adjtimex_reads_per_poll", float64(c.AdjtimexReads)/float64(c.UDPSends))
		}
	}
	return nil
}

// modesHistogram lists how many adjtimex writes of each modes word the
// process comm made in [from, to): "0x2001×3 0x6003×1" (which calls a
// daemon makes per poll).
func modesHistogram(events []ktrace.Event, comm string, from, to float64) string {
	n := map[uint32]int{}
	for _, e := range events {
		if e.Comm == comm && e.Name == ktrace.EvAdjtimex && e.Modes != 0 && e.T >= from && e.T < to {
			n[e.Modes]++
		}
	}
	modes := make([]uint32, 0, len(n))
	for m := range n {
		modes = append(modes, m)
	}
	slices.Sort(modes)
	parts := make([]string, len(modes))
	for i, m := range modes {
		parts[i] = fmt.Sprintf("%#x×%d", m, n[m])
	}
	return strings.Join(parts, " ")
}

// hostAxisPPM converts a rate fitted against the guest's CLOCK_MONOTONIC
// (which the kernel slews with CLOCK_REALTIME) to the guest's rate per
// host second: with the offset's slope s per guest second, the guest runs
// at 1+ρ with ρ = −s/(1+s) = R/(1−R) for R = −s. Negligible at a few
// hundred ppm; 0.5 % at a 5000 ppm slew.
func hostAxisPPM(ratePPM float64) float64 {
	r := ratePPM * 1e-6
	return r / (1 - r) * 1e6
}

// summarise computes the discipline figures from the independent offsets
// (host - guest, at guest monotonic T; t0 is the daemon's start).
func summarise(rep *report.Report, ss []sample, t0, tEnd, window float64) {
	first, settle := math.NaN(), math.NaN()
	for _, x := range ss {
		if math.Abs(x.Offset) >= 5e-3 {
			settle = math.NaN()
			continue
		}
		if math.IsNaN(first) {
			first = x.T - t0
		}
		if math.IsNaN(settle) {
			settle = x.T - t0
		}
	}
	rep.Set("time_to_5ms_seconds", first)
	rep.Set("settle_5ms_seconds", settle)
	// Samples at or over 5 ms after the first below: a transient, or an
	// outlier of the measurement (which makes settle_5ms late).
	if !math.IsNaN(first) {
		n := 0
		for _, x := range ss {
			if x.T-t0 > first && math.Abs(x.Offset) >= 5e-3 {
				n++
			}
		}
		rep.Set("samples_over_5ms_after_first", float64(n))
	}
	var win []sample
	for _, x := range ss {
		if x.T >= tEnd-window {
			win = append(win, x)
		}
	}
	if len(win) == 0 {
		return
	}
	var sq, mx float64
	for _, x := range win {
		sq += x.Offset * x.Offset
		mx = math.Max(mx, math.Abs(x.Offset))
	}
	rep.Set("rms_offset_seconds", math.Sqrt(sq/float64(len(win))))
	rep.Set("max_abs_offset_window_seconds", mx)
	rep.Set("window_samples", float64(len(win)))
	if f, err := fitRate(win); err == nil {
		rep.Set("residual_rate_ppm", f.RatePPM)
	}
	rep.Set("final_offset_seconds", ss[len(ss)-1].Offset)
}

// startDaemon starts a clock-disciplining program with its output in
// daemonLog, each line stamped with the guest's monotonic time when it
// came (ntptool's text log has no time stamps off a terminal; the stamps
// line its events up with the notes and the kernel trace). It keeps
// CAP_SYS_TIME, so the guard is checked again here.
func (s *g) startDaemon(argv []string) (*exec.Cmd, error) {
	if err := s.checkGuest(); err != nil {
		return nil, err
	}
	logf, err := os.Create(daemonLog)
	if err != nil {
		return nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.Env = []string{"PATH=/sbin:/usr/sbin:/bin:/usr/bin", "HOME=/", "NTPTOOL_CPUPROFILE=/tmp/cpu.prof"}
	if err := cmd.Start(); err != nil {
		logf.Close()
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	pw.Close()
	s.daemonPID = cmd.Process.Pid
	done := make(chan struct{})
	s.daemonLogDone = done
	go func() {
		defer close(done)
		defer logf.Close()
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(logf, "[%8.3f] %s\n", mono(), sc.Text())
		}
	}()
	return cmd, nil
}

// daemonLogTail is the end of the daemon's log once it has exited (its
// last lines may still be in the pipe for a moment).
func (s *g) daemonLogTail() string {
	if s.daemonLogDone != nil {
		select {
		case <-s.daemonLogDone:
		case <-time.After(2 * time.Second):
		}
	}
	return tailFile(daemonLog, daemonLogLines)
}

// daemonLogLines is how much of the daemon's log the report keeps.
const daemonLogLines = 200

func exitString(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "0"
	case errors.As(err, &ee):
		return ee.String()
	default:
		return err.Error()
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return tail(string(b), n)
}
