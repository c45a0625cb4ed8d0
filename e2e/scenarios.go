package main

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ntptool/ntptool/e2e/report"
)

// Bundles of programs copied into a scenario's initramfs beside the base.
const (
	bundleChrony = "chrony"
	bundleDHCP   = "dhcp"
)

// scenario is one boot of the guest.
type scenario struct {
	Name string
	// Issue says which part of issue 10 it is.
	Issue string
	// Pending is a skip reason; pending scenarios run only with -pending.
	Pending string
	Bundles []string
	Spec    func(o options) report.Spec
	Expect  func(r *report.Report, sp report.Spec) []check
}

// options are the harness flags that shape the scenarios.
type options struct {
	Port  int
	Quick bool // shorter runs, for trying the harness out
}

// budget bounds one boot: boot and set-up, the scenario's own time, and a
// margin for TCG's slowness.
func budget(sp report.Spec) time.Duration {
	s := 60 + sp.FreeRunSeconds + sp.RunSeconds
	if sp.RestartSeconds > 0 {
		s += sp.RestartSeconds + 30
	}
	if sp.LeaseSeconds > 0 {
		s += float64(sp.LeaseSeconds) + 90
		watch := sp.WatchSeconds
		if watch <= 0 {
			watch = 3*float64(sp.LeaseSeconds) + 10
		}
		switch sp.Scenario {
		case "dhcp-hooks": // the steps, each watched
			s += float64(len(sp.Steps()))*watch + 60
		case "dhcp-external": // renew, the daemon's start, one step watched
			s += watch + 90
		}
	}
	return time.Duration(s * float64(time.Second))
}

func pick(o options, full, quick float64) float64 {
	if o.Quick {
		return quick
	}
	return full
}

// The injected errors of the discipline scenarios (issue 10, scenario 1).
const (
	injectStep = 30.0
	injectFreq = 200.0
)

var scenarioList = []scenario{
	{
		Name: "smoke", Issue: "clock control and measurement",
		Spec: func(o options) report.Spec {
			return report.Spec{Scenario: "smoke", ServerPort: o.Port, InjectStepSeconds: injectStep, InjectFreqPPM: injectFreq,
				FreeRunSeconds: pick(o, 90, 30), RateWindowSeconds: 15, RunSeconds: pick(o, 60, 30), SampleSeconds: 1}
		},
		Expect: expectSmoke,
	},
	{
		Name: "discipline", Issue: "1",
		Spec: func(o options) report.Spec {
			return report.Spec{Scenario: "discipline", ServerPort: o.Port, InjectStepSeconds: injectStep, InjectFreqPPM: injectFreq,
				FreeRunSeconds: pick(o, 60, 30), RateWindowSeconds: 15, RunSeconds: pick(o, 420, 180),
				RMSWindowSeconds: pick(o, 180, 60), SampleSeconds: 2, Config: ntptoolConfig(o.Port, false, 0)}
		},
		Expect: expectDiscipline,
	},
	{
		Name: "slew", Issue: "2",
		Spec: func(o options) report.Spec {
			return report.Spec{Scenario: "slew", ServerPort: o.Port, InjectStepSeconds: 0.5, InjectFreqPPM: 0,
				FreeRunSeconds: pick(o, 30, 20), RateWindowSeconds: 15, RunSeconds: pick(o, 240, 180),
				RMSWindowSeconds: 60, SampleSeconds: 2, Config: ntptoolConfig(o.Port, true, slewRatePPM)}
		},
		Expect: expectSlew,
	},
	{
		Name: "chrony", Issue: "5, chrony half", Bundles: []string{bundleChrony},
		Spec: func(o options) report.Spec {
			return comparisonSpec(o, "chrony", chronyConfig(o.Port))
		},
		Expect: expectChrony,
	},
	{
		Name: "ntptool-vs-chrony", Issue: "5, ntptool half",
		Spec: func(o options) report.Spec {
			return comparisonSpec(o, "ntptool-vs-chrony", ntptoolConfig(o.Port, false, 0))
		},
		Expect: expectChrony,
	},
	{
		Name: "dhcp-noh", Issue: "3, negative control", Bundles: []string{bundleDHCP},
		Spec: func(o options) report.Spec {
			return report.Spec{Scenario: "dhcp-noh", ServerPort: o.Port, LeaseSeconds: 120, DHCPClient: "dhclient",
				Config: ntptoolNoHooksConfig}
		},
		Expect: expectDHCPNoHooks,
	},
	dhcpNoHooksMonotonic("dhcp-noh-udhcpc", "udhcpc"),
	dhcpNoHooksMonotonic("dhcp-noh-dhcpcd", "dhcpcd"),
	dhcpExternal("dhcp-external", "dhclient", "3, renew and external step"),
	dhcpExternal("dhcp-external-udhcpc", "udhcpc", "4, udhcpc: renew and external step"),
	dhcpExternal("dhcp-external-dhcpcd", "dhcpcd", "4, dhcpcd: renew and external step"),
	{
		Name: "least-priv", Issue: "6",
		Spec: func(o options) report.Spec {
			sp := report.Spec{Scenario: "least-priv", ServerPort: o.Port, InjectStepSeconds: injectStep, InjectFreqPPM: injectFreq,
				FreeRunSeconds: pick(o, 60, 30), RateWindowSeconds: 15, RunSeconds: pick(o, 420, 180),
				RMSWindowSeconds: pick(o, 300, 60), SampleSeconds: 2, RestartSeconds: pick(o, 180, 90),
				Config: ntptoolConfig(o.Port, false, 0) + "\n[run]\nuser = \"ntptool\"\n"}
			return sp
		},
		Expect: expectLeastPriv,
	},
	dhcpHooks("dhcp-hooks", "dhclient", "3, with ntptool step's hooks"),
	{
		// CI's share of scenario 3's positive half (the whole takes twice
		// 3 lease periods): the backward step, watched 20 s past the
		// valid_lft at which dhcp-noh loses the address.
		Name: "dhcp-hooks-back", Issue: "3, with hooks, -1 h only (CI)", Bundles: []string{bundleDHCP},
		Spec: func(o options) report.Spec {
			return report.Spec{Scenario: "dhcp-hooks", ServerPort: o.Port, LeaseSeconds: 120, DHCPClient: "dhclient",
				WatchSeconds: pick(o, 3*120+10, 120+20), StepsBy: []string{"-1h"}, Config: ntptoolHooksConfig(o.Port, "dhclient")}
		},
		Expect: expectDHCPHooks,
	},
	dhcpHooks("dhcp-hooks-udhcpc", "udhcpc", "4, udhcpc, ntptool step"),
	dhcpHooks("dhcp-hooks-dhcpcd", "dhcpcd", "4, dhcpcd, ntptool step"),
}

// comparisonSpec is scenario 5's, the same for both daemons.
func comparisonSpec(o options, name, config string) report.Spec {
	return report.Spec{Scenario: name, ServerPort: o.Port, InjectStepSeconds: injectStep, InjectFreqPPM: injectFreq,
		FreeRunSeconds: pick(o, 60, 30), RateWindowSeconds: 15, RunSeconds: pick(o, 600, 180),
		RMSWindowSeconds: pick(o, 300, 60), SampleSeconds: 2, Config: config}
}

// dhcpNoHooksMonotonic is scenario 4's baseline: the same -1 h step with no
// hook under a client whose timers are monotonic; the address must survive.
func dhcpNoHooksMonotonic(name, client string) scenario {
	return scenario{
		Name: name, Issue: "4, baseline without hooks", Bundles: []string{bundleDHCP},
		Spec: func(o options) report.Spec {
			return report.Spec{Scenario: "dhcp-noh", ServerPort: o.Port, LeaseSeconds: 120, DHCPClient: client,
				Config: ntptoolNoHooksConfig}
		},
		Expect: expectDHCPMonotonic,
	}
}

// dhcpExternal is the half of scenarios 3 and 4 that runs without
// `ntptool step`: ntptool renew, and a `date -s` back 1 h under ntptool
// run, whose watcher must renew within a second; the address is then
// watched 3 lease periods (in -quick, one and 30 s: past valid_lft,
// where the negative control loses it).
func dhcpExternal(name, client, issue string) scenario {
	return scenario{
		Name: name, Issue: issue, Bundles: []string{bundleDHCP},
		Spec: func(o options) report.Spec {
			return report.Spec{Scenario: "dhcp-external", ServerPort: o.Port, LeaseSeconds: 120, DHCPClient: client,
				WatchSeconds: pick(o, 3*120+10, 120+30), Config: ntptoolHooksConfig(o.Port, client)}
		},
		Expect: expectDHCPExternal,
	}
}

func dhcpHooks(name, client, issue string) scenario {
	return scenario{
		Name: name, Issue: issue, Bundles: []string{bundleDHCP},
		Spec: func(o options) report.Spec {
			return report.Spec{Scenario: "dhcp-hooks", ServerPort: o.Port, LeaseSeconds: 120, DHCPClient: client,
				WatchSeconds: pick(o, 3*120+10, 120+30), Config: ntptoolHooksConfig(o.Port, client)}
		},
		Expect: expectDHCPHooks,
	}
}

// slewRatePPM is scenario 2's configured maximum slew rate: 0.5 s goes in
// 100 s.
const slewRatePPM = 5000

func chronyConfig(port int) string {
	return fmt.Sprintf(`# chronyd in the e2e guest: the same source and polling as ntptool's run.
server 10.0.2.2 port %d minpoll 4 maxpoll 4 iburst
makestep 1 3
# rtcsync clears STA_UNSYNC once synchronised (adjtimex then returns TIME_OK),
# as ntptool does.
rtcsync
driftfile /var/lib/chrony/chrony.drift
cmdport 0
pidfile /run/chrony/chronyd.pid
`, port)
}

// ntptoolConfig is the daemon's configuration in scenarios 1, 2 and 5:
// one source polled every 16 s, exec hooks that leave a mark, the drift
// file, the control socket and the audit journal.
func ntptoolConfig(port int, slewOnly bool, maxSlewPPM float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, `driftfile = "/var/lib/ntptool/drift"

[[source]]
server = "10.0.2.2"
port = %d
minpoll = 4
maxpoll = 4
iburst = true

[step]
threshold = "1s"
limit = 3
slew_only = %v
`, port, slewOnly)
	if maxSlewPPM > 0 {
		fmt.Fprintf(&b, "\n[clock]\nmax_slew_rate_ppm = %s\n", strconv.FormatFloat(maxSlewPPM, 'f', -1, 64))
	}
	b.WriteString(`
[hooks]
dhcp_renew = "off"
pre_step = [["/bin/busybox", "touch", "/tmp/e2e-pre-step"]]
post_step = [["/bin/busybox", "touch", "/tmp/e2e-post-step"]]

[control]
socket = "/run/ntptool/control.sock"

[audit]
journal = "/var/log/ntptool/audit.jsonl"

[log]
level = "info"
`)
	return b.String()
}

// ntptoolHooksConfig is scenarios 3 and 4's: the built-in DHCP renewer for
// the client under test (dhclient's lease file and PID file where the
// guest's lab puts them are the client's defaults there).
func ntptoolHooksConfig(port int, client string) string {
	return fmt.Sprintf(`[[source]]
server = "10.0.2.2"
port = %d
minpoll = 4
maxpoll = 4
iburst = true

[hooks]
dhcp_renew = %q
timeout = "10s"

[control]
socket = "/run/ntptool/control.sock"

[audit]
journal = "/var/log/ntptool/audit.jsonl"
`, port, client)
}

// ntptoolNoHooksConfig is the negative controls' `ntptool step`
// configuration: every DHCP renewer off, no exec hook.
const ntptoolNoHooksConfig = `[hooks]
dhcp_renew = "off"

[audit]
journal = "/var/log/ntptool/audit.jsonl"
`

// check is one row of the result table.
type check struct {
	Scenario, Expect, Measured, Status string
}

// Statuses of a row.
const (
	pass = "PASS"
	fail = "FAIL"
	info = "INFO"
	skip = "SKIP"
)

func status(ok bool) string {
	if ok {
		return pass
	}
	return fail
}

// metric builds a row from a metric: absent metrics fail.
func metric(r *report.Report, name, expect, format string, scale float64, ok func(v float64) bool) check {
	v, present := r.Metric(name)
	if !present {
		why := "missing"
		if f, isFact := r.Facts[name]; isFact {
			why = f
		}
		if ok == nil {
			return check{Expect: expect, Measured: name + " " + why, Status: info}
		}
		return check{Expect: expect, Measured: name + " " + why, Status: fail}
	}
	m := fmt.Sprintf(format, v*scale)
	if ok == nil {
		return check{Expect: expect, Measured: m, Status: info}
	}
	return check{Expect: expect, Measured: m, Status: status(ok(v))}
}

func fact(r *report.Report, name, expect, want string) check {
	v, ok := r.Facts[name]
	if !ok {
		return check{Expect: expect, Measured: name + " missing", Status: fail}
	}
	return check{Expect: expect, Measured: firstLine(v), Status: status(slices.Contains(strings.Split(want, "|"), v))}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// freqTolerancePPM is how close a frequency must be measured: 10 ppm, or
// more when the rig cannot measure that well: three standard errors of the
// rate fits the figure is made of, plus twice the wander of the guest's
// own rate (TCG's emulated clock) seen between the free run's windows.
func freqTolerancePPM(r *report.Report) float64 {
	seF, seA, w := r.Metrics["free_rate_se_ppm"], r.Metrics["adjusted_rate_se_ppm"], r.Metrics["free_wander_ppm"]
	return math.Max(10, 3*math.Hypot(seF, seA)+2*w)
}

func rateRows(r *report.Report) []check {
	m := r.Metrics
	return []check{
		{Expect: "guest's own rate vs host (free run)", Measured: fmt.Sprintf("%+.2f ± %.2f ppm over %.0f s", m["free_rate_ppm"], m["free_rate_se_ppm"], m["free_windows"]*15), Status: info},
		{Expect: "its spread over 15 s windows", Measured: fmt.Sprintf("sd %.2f ppm [%+.1f, %+.1f]: noise %.2f, wander %.2f",
			m["free_window_sd_ppm"], m["free_window_min_ppm"], m["free_window_max_ppm"], m["free_window_se_ppm"], m["free_wander_ppm"]), Status: info},
	}
}

func expectSmoke(r *report.Report, sp report.Spec) []check {
	tol := freqTolerancePPM(r)
	out := rateRows(r)
	out = append(out,
		metric(r, "offset_after_step_seconds", fmt.Sprintf("offset after the %+.0f s step", sp.InjectStepSeconds), "%+.6f s", 1, nil),
		metric(r, "step_error_seconds", "step lands where set: |error| < 5 ms", "%+.3f ms", 1e3, func(v float64) bool { return math.Abs(v) < 5e-3 }),
		metric(r, "kernel_freq_ppm", fmt.Sprintf("kernel reads back %+.0f ppm", sp.InjectFreqPPM), "%+.4f ppm", 1,
			func(v float64) bool { return math.Abs(v-sp.InjectFreqPPM) < 1e-3 }),
		metric(r, "freq_seen_ppm", fmt.Sprintf("host sees %+.0f ppm (±%.0f)", sp.InjectFreqPPM, tol), "%+.2f ppm", 1,
			func(v float64) bool { return math.Abs(v-sp.InjectFreqPPM) <= tol }),
		check{Expect: "with it set, spread over 15 s windows", Measured: fmt.Sprintf("sd %.2f ppm: noise %.2f, wander %.2f",
			r.Metrics["adjusted_window_sd_ppm"], r.Metrics["adjusted_window_se_ppm"], r.Metrics["adjusted_wander_ppm"]), Status: info},
		metric(r, "trace_init_steps", "kernel trace: the init's 1 step", "%.0f", 1, func(v float64) bool { return v == 1 }),
		metric(r, "trace_init_frequency_sets", "kernel trace: the init's 1 ADJ_FREQUENCY", "%.0f", 1, func(v float64) bool { return v == 1 }),
		check{Expect: "kernel trace: every query packet counted", Measured: fmt.Sprintf("%.0f traced / %.0f sent",
			r.Metrics["trace_query_udp_sends"], r.Metrics["query_packets_sent"]),
			Status: status(r.Metrics["query_packets_sent"] > 0 && r.Metrics["trace_query_udp_sends"] == r.Metrics["query_packets_sent"])},
	)
	return out
}

// disciplineRows are the figures scenario 5 compares, and sanity bounds
// that any working daemon meets in this rig (if chrony fails them, the rig
// is broken, and ntptool's results would mean nothing).
func disciplineRows(r *report.Report, sp report.Spec) []check {
	tol := freqTolerancePPM(r)
	win := sp.RMSWindowSeconds
	return []check{
		metric(r, "offset_at_start_seconds", fmt.Sprintf("guest starts %+.0f s off the host", sp.InjectStepSeconds), "%+.3f s", -1,
			func(v float64) bool { return math.Abs(v+sp.InjectStepSeconds) < 0.05 }),
		metric(r, "steps", "steps the clock once", "%.0f", 1, func(v float64) bool { return v == 1 }),
		metric(r, "time_to_5ms_seconds", "reaches |offset| < 5 ms", "%.1f s", 1, func(v float64) bool { return v < sp.RunSeconds }),
		metric(r, "settle_5ms_seconds", "stays < 5 ms from", "%.1f s", 1, nil),
		metric(r, "samples_over_5ms_after_first", "samples ≥ 5 ms after the first below", "%.0f", 1, nil),
		metric(r, "rms_offset_seconds", fmt.Sprintf("offset RMS, last %.0f s, < 5 ms", win), "%.3f ms", 1e3, func(v float64) bool { return v < 5e-3 }),
		metric(r, "max_abs_offset_window_seconds", fmt.Sprintf("max |offset|, last %.0f s", win), "%.3f ms", 1e3, nil),
		metric(r, "freq_error_ppm", fmt.Sprintf("frequency error vs guest's own rate (±%.0f)", tol), "%+.2f ppm", 1, func(v float64) bool { return math.Abs(v) <= tol }),
		metric(r, "residual_rate_ppm", fmt.Sprintf("residual rate, last %.0f s", win), "%+.2f ppm", 1, nil),
		metric(r, "drift_freq_error_ppm", "drift file's frequency vs guest's own rate", "%+.2f ppm", 1, nil),
		metric(r, "adjtimex_writes_per_poll", fmt.Sprintf("adjtimex/clock_adjtime writes per poll, last %.0f s", win), "%.2f", 1, nil),
		metric(r, "adjtimex_reads_per_poll", fmt.Sprintf("adjtimex reads (modes 0) per poll, last %.0f s", win), "%.2f", 1, nil),
		fact(r, "adjtimex_state", "adjtimex returns TIME_OK", "TIME_OK"),
		metric(r, "adjtimex_esterror_us", "kernel esterror", "%.0f µs", 1, nil),
		metric(r, "adjtimex_maxerror_us", "kernel maxerror", "%.0f µs", 1, nil),
	}
}

func expectChrony(r *report.Report, sp report.Spec) []check {
	return append(rateRows(r), disciplineRows(r, sp)...)
}

// capSysTimeOnly is /proc/PID/status's capability mask with only
// CAP_SYS_TIME (bit 25).
const capSysTimeOnly = "0000000002000000"

// ntptoolUID is the guest's ntptool user (e2e/build.go's /etc/passwd).
const ntptoolUID = "101"

func expectLeastPriv(r *report.Report, sp report.Spec) []check {
	tol := freqTolerancePPM(r)
	maxErr, okM := r.Metric("adjtimex_maxerror_us")
	estErr, okE := r.Metric("adjtimex_esterror_us")
	maxOff, okO := r.Metric("max_abs_offset_window_seconds")
	restartSteps := countLines(r.Facts["restart_daemon_log"], stepLogged)
	return []check{
		fact(r, "daemon_euid", "ntptool run switched to user ntptool (euid)", ntptoolUID),
		fact(r, "daemon_capeff", "CapEff: only CAP_SYS_TIME", capSysTimeOnly),
		fact(r, "daemon_capprm", "CapPrm: only CAP_SYS_TIME", capSysTimeOnly),
		fact(r, "daemon_capbnd", "CapBnd: only CAP_SYS_TIME", capSysTimeOnly),
		fact(r, "daemon_capamb", "CapAmb: none", "0000000000000000"),
		metric(r, "daemon_threads_with_other_creds", "every thread the same (of daemon_threads)", "%.0f", 1, func(v float64) bool { return v == 0 }),
		check{Expect: "hook helper: root without CAP_SYS_TIME", Measured: fmt.Sprintf("euid %s CapEff %s", r.Facts["helper_euid"], r.Facts["helper_capeff"]),
			Status: status(r.Facts["helper_euid"] == "0" && r.Facts["helper_capeff"] != "" && !hasCap(r.Facts["helper_capeff"], 25))},
		metric(r, "steps", "steps the clock once", "%.0f", 1, func(v float64) bool { return v == 1 }),
		metric(r, "time_to_5ms_seconds", "still disciplines: |offset| < 5 ms", "%.1f s", 1, func(v float64) bool { return v < sp.RunSeconds }),
		metric(r, "rms_offset_seconds", fmt.Sprintf("offset RMS, last %.0f s < 5 ms", sp.RMSWindowSeconds), "%.3f ms", 1e3, func(v float64) bool { return v < 5e-3 }),
		metric(r, "freq_error_ppm", fmt.Sprintf("frequency error vs guest's own rate (±%.0f)", tol), "%+.2f ppm", 1, func(v float64) bool { return math.Abs(v) <= tol }),
		fact(r, "adjtimex_state", "adjtimex (modes 0) returns TIME_OK", "TIME_OK"),
		check{Expect: "kernel maxerror ≥ max |offset| measured, < 100 ms", Measured: fmt.Sprintf("%.0f µs vs %.0f µs", maxErr, maxOff*1e6),
			Status: status(okM && okO && maxErr >= maxOff*1e6 && maxErr < 1e5)},
		check{Expect: "kernel esterror > 0 and ≤ maxerror", Measured: fmt.Sprintf("%.0f µs (RMS measured %.0f µs)", estErr, r.Metrics["rms_offset_seconds"]*1e6),
			Status: status(okE && okM && estErr > 0 && estErr <= maxErr)},
		check{Expect: "drift file written on SIGTERM", Measured: firstLine(r.Facts["drift_file"] + r.Facts["drift_file_error"]),
			Status: status(isNumber(r.Facts["drift_file"]))},
		metric(r, "drift_freq_error_ppm", fmt.Sprintf("it holds the learned frequency (±%.0f)", tol), "%+.2f ppm", 1, func(v float64) bool { return math.Abs(v) <= tol }),
		metric(r, "restart_freq_set_seconds", "restart: kernel frequency set within 2 s", "%.2f s", 1, func(v float64) bool { return v <= 2 }),
		metric(r, "restart_first_freq_vs_drift_ppm", "to the drift file's (±0.5 ppm)", "%+.3f ppm", 1, func(v float64) bool { return math.Abs(v) <= 0.5 }),
		metric(r, "restart_max_freq_vs_drift_ppm", fmt.Sprintf("no frequency transient: max |status freq − drift|, %.0f s (≤ 5 ppm)", sp.RestartSeconds), "%.2f ppm", 1,
			func(v float64) bool { return v <= 5 }),
		metric(r, "restart_max_kernel_rate_vs_drift_ppm", "the kernel's rate meanwhile (freq and slews), max |− drift|", "%.2f ppm", 1, nil),
		metric(r, "restart_max_abs_offset_seconds", "max |offset| after the restart < 5 ms", "%.3f ms", 1e3, func(v float64) bool { return v < 5e-3 }),
		check{Expect: "no step after the restart", Measured: fmt.Sprintf("%d steps logged", restartSteps), Status: status(restartSteps == 0 && r.Facts["restart_daemon_log"] != "")},
		fact(r, "restart_capeff", "restarted daemon: only CAP_SYS_TIME", capSysTimeOnly),
		check{Expect: "the step is in the audit journal (written as ntptool)", Measured: firstLine(grepLine(r.Facts["audit_journal"], journalStep)),
			Status: status(grepLine(r.Facts["audit_journal"], journalStep) != "")},
		check{Expect: "no journal write failed", Measured: firstLine(grepLine(r.Facts["daemon_log"]+"\n"+r.Facts["restart_daemon_log"], "entry not written")),
			Status: status(grepLine(r.Facts["daemon_log"]+"\n"+r.Facts["restart_daemon_log"], "entry not written") == "")},
	}
}

// hasCap reports whether a /proc capability mask (hex) holds bit.
func hasCap(mask string, bit uint) bool {
	v, err := strconv.ParseUint(mask, 16, 64)
	return err == nil && v&(1<<bit) != 0
}

// journalStep marks an audit journal line of a step (audit.KindStep).
const journalStep = `"kind":"step"`

// stepLogged is the message of ntptool run's log line for a step made.
const stepLogged = `msg="clock stepped"`

// pollSeconds is the poll interval at minpoll = maxpoll = 4.
const pollSeconds = 16

func expectDiscipline(r *report.Report, sp report.Spec) []check {
	out := expectChrony(r, sp)
	first, okFirst := r.Metric("first_step_seconds")
	t5, ok5 := r.Metric("time_to_5ms_seconds")
	out = append(out,
		check{Expect: "|offset| < 5 ms within 3 polls of the step", Measured: fmt.Sprintf("%.1f s after the step", t5-first),
			Status: status(okFirst && ok5 && t5-first <= 3*pollSeconds)},
		check{Expect: "drift file written", Measured: firstLine(r.Facts["drift_file"] + r.Facts["drift_file_error"]),
			Status: status(isNumber(r.Facts["drift_file"]))},
		check{Expect: "pre- and post-step hooks ran", Measured: r.Facts["hooks_ran"], Status: status(r.Facts["hooks_ran"] == "pre,post")},
		check{Expect: "the step is logged", Measured: firstLine(grepLine(r.Facts["daemon_log"], stepLogged)),
			Status: status(grepLine(r.Facts["daemon_log"], stepLogged) != "")},
	)
	j := grepLine(r.Facts["audit_journal"], journalStep)
	return append(out, check{Expect: "the step is in the audit journal", Measured: firstLine(j), Status: status(j != "")})
}

func expectSlew(r *report.Report, sp report.Spec) []check {
	return []check{
		metric(r, "offset_at_start_seconds", fmt.Sprintf("guest starts %+.1f s off the host", sp.InjectStepSeconds), "%+.4f s", -1,
			func(v float64) bool { return math.Abs(v+sp.InjectStepSeconds) < 0.02 }),
		metric(r, "steps", "never steps", "%.0f", 1, func(v float64) bool { return v == 0 }),
		metric(r, "slew_rate_ppm", fmt.Sprintf("slews at the max rate %d ppm (-20%%..+5%%)", slewRatePPM), "%.0f ppm", 1,
			func(v float64) bool { return math.Abs(v) >= 0.8*slewRatePPM && math.Abs(v) <= 1.05*slewRatePPM }),
		metric(r, "slew_kernel_rate_ppm", "the kernel's rate correction meanwhile (adjtimex read)", "%+.0f ppm", 1, nil),
		metric(r, "time_to_5ms_seconds", "reaches |offset| < 5 ms", "%.1f s", 1, func(v float64) bool { return v < sp.RunSeconds }),
		metric(r, "rms_offset_seconds", "offset RMS at the end < 5 ms", "%.3f ms", 1e3, func(v float64) bool { return v < 5e-3 }),
	}
}

func expectDHCPNoHooks(r *report.Report, sp report.Spec) []check {
	lease := float64(sp.LeaseSeconds)
	return []check{
		metric(r, "valid_lft_at_bind_seconds", fmt.Sprintf("%s bound, valid_lft ≈ %.0f s", sp.DHCPClient, lease), "%.0f s", 1,
			func(v float64) bool { return v > lease-15 && v <= lease }),
		fact(r, "step_exit", "ntptool step --by -1h, renewers off: stepped (exit 0 or 3)", "0|3"),
		fact(r, "address_lost", "address IS lost after the -1 h step (the seed)", "true"),
		metric(r, "address_lasted_after_bind_seconds", fmt.Sprintf("lost at valid_lft expiry (%.0f..%.0f s)", lease-10, lease+15), "%.1f s", 1,
			func(v float64) bool { return v >= lease-10 && v <= lease+15 }),
		fact(r, "client_alive_at_end", "dhclient still running", "true"),
		metric(r, "acks_after_step", "no renewal after the step", "%.0f ACKs", 1, func(v float64) bool { return v == 0 }),
	}
}

func expectDHCPMonotonic(r *report.Report, sp report.Spec) []check {
	lease := float64(sp.LeaseSeconds)
	return []check{
		metric(r, "valid_lft_at_bind_seconds", fmt.Sprintf("%s bound, valid_lft ≈ %.0f s", sp.DHCPClient, lease), "%.0f s", 1,
			func(v float64) bool { return v > lease-15 && v <= lease }),
		fact(r, "step_exit", "ntptool step --by -1h, renewers off: stepped (exit 0 or 3)", "0|3"),
		fact(r, "address_lost", "address lost after the -1 h step, no hook", "false"),
		metric(r, "address_lasted_after_bind_seconds", fmt.Sprintf("watched past valid_lft (≥ %.0f s)", lease+30), "%.1f s", 1,
			func(v float64) bool { return v >= lease+30 }),
		fact(r, "client_alive_at_end", sp.DHCPClient+" still running", "true"),
		metric(r, "acks_after_step", "renewed on its monotonic timer", "%.0f ACKs", 1, func(v float64) bool { return v >= 1 }),
	}
}

func expectDHCPHooks(r *report.Report, sp report.Spec) []check {
	lease := float64(sp.LeaseSeconds)
	watch := sp.WatchSeconds - 10 // the watch, less the polling's slack
	var out []check
	out = append(out, metric(r, "valid_lft_at_bind_seconds", fmt.Sprintf("%s bound, valid_lft ≈ %.0f s", sp.DHCPClient, lease), "%.0f s", 1,
		func(v float64) bool { return v > lease-15 && v <= lease }))
	steps := sp.Steps()
	for _, by := range steps {
		ph := struct{ name, by string }{report.StepPhase(by), by}
		out = append(out,
			fact(r, "step_"+ph.name+"_exit", "ntptool step --by "+ph.by+" exits 0", "0"),
			metric(r, "step_"+ph.name+"_seconds", ph.by+": the clock moved by (host query)", "%+.3f s", 1, nil),
			metric(r, "step_"+ph.name+"_acks", ph.by+": its hooks renewed the lease", "%.0f ACKs", 1, func(v float64) bool { return v >= 1 }),
			fact(r, "lost_"+ph.name, ph.by+": address lost", "false"),
			metric(r, "survived_"+ph.name+"_seconds", fmt.Sprintf("%s: watched ≥ %.0f s (valid_lft %.0f s)", ph.by, watch, lease), "%.0f s", 1,
				func(v float64) bool { return v >= watch }),
		)
	}
	return append(out,
		fact(r, "client_alive_at_end", sp.DHCPClient+" running at the end", "true"),
		metric(r, "client_instances_at_end", "one instance of it, not two", "%.0f", 1, func(v float64) bool { return v == 1 }),
		check{Expect: fmt.Sprintf("the %d steps are in the audit journal", len(steps)), Measured: fmt.Sprintf("%d step entries", countLines(r.Facts["audit_journal"], journalStep)),
			Status: status(countLines(r.Facts["audit_journal"], journalStep) >= len(steps))},
	)
}

// countLines counts the lines of s that hold sub.
func countLines(s, sub string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

func expectDHCPExternal(r *report.Report, sp report.Spec) []check {
	lease := float64(sp.LeaseSeconds)
	watch := sp.WatchSeconds - 10 // the watch, less the polling's slack
	step := externalStepSeconds
	return []check{
		metric(r, "valid_lft_at_bind_seconds", fmt.Sprintf("%s bound, valid_lft ≈ %.0f s", sp.DHCPClient, lease), "%.0f s", 1,
			func(v float64) bool { return v > lease-15 && v <= lease }),
		metric(r, "by_hand_ack_seconds", fmt.Sprintf("%s renewed by hand (%s): DHCPACK after", sp.DHCPClient, byHand[sp.DHCPClient]), "%.3f s", 1,
			func(float64) bool { return true }), // the baseline must be there

		withinOfHand(r, "renew_ack_seconds", "ntptool renew: DHCPACK"),
		metric(r, "daemon_sync_seconds", "ntptool run synchronised (wait-sync)", "%.1f s", 1, nil),
		metric(r, "external_step_seconds", fmt.Sprintf("date -s steps the clock %+.0f s", step), "%+.3f s", 1,
			func(v float64) bool { return math.Abs(v-step) < 1.5 }), // date -s sets whole seconds
		metric(r, "external_detect_seconds", "ntptool run detects it within 1 s (log stamp)", "%.3f s", 1, func(v float64) bool { return v <= 1 }),
		withinOfHand(r, "external_step_ack_seconds", "and renews: DHCPACK"),
		fact(r, "lost_external", "address lost after it", "false"),
		metric(r, "survived_external_seconds", fmt.Sprintf("watched ≥ %.0f s (valid_lft %.0f s)", watch, lease), "%.0f s", 1,
			func(v float64) bool { return v >= watch }),
		fact(r, "client_alive_at_end", sp.DHCPClient+" running at the end", "true"),
		metric(r, "client_instances_at_end", "one instance of it, not two", "%.0f", 1, func(v float64) bool { return v == 1 }),
		metric(r, "offset_at_end_seconds", "host − guest at the end (the daemon holds: [step] panic)", "%+.3f s", 1, nil),
		check{Expect: "daemon's sync state then", Measured: statusField(r.Facts["ntptool_status"], "sync_state"), Status: info},
		check{Expect: "kernel's state then (adjtimex)", Measured: r.Facts["adjtimex_state"], Status: info},
		check{Expect: "the daemon logged the external step", Measured: firstLine(grepLine(r.Facts["daemon_log"], externalLogged)),
			Status: status(grepLine(r.Facts["daemon_log"], externalLogged) != "")},
	}
}

// byHand says how the guest renews each client by hand, the baseline of
// the renewal latencies.
var byHand = map[string]string{"dhclient": "SIGTERM, restart", "udhcpc": "SIGUSR1", "dhcpcd": "dhcpcd -N"}

// withinOfHand judges a renewal latency: within 1 s of the client's own
// renewal by hand (a restarted dhclient needs seconds under TCG before it
// sends its DHCPREQUEST, whoever restarts it; udhcpc answers SIGUSR1 at
// once). The by-hand figure is measured in the same boot.
func withinOfHand(r *report.Report, name, what string) check {
	hand, ok := r.Metric("by_hand_ack_seconds")
	if !ok {
		hand = 0 // no baseline: the strict 1 s
	}
	return metric(r, name, fmt.Sprintf("%s within 1 s of by hand (≤ %.2f s)", what, hand+1), "%.3f s", 1,
		func(v float64) bool { return v <= hand+1 })
}

// externalStepSeconds is the guest's externalStepBy: date -s back 1 h.
const externalStepSeconds = -3600.0

// externalLogged is the daemon's log line for a step someone else made.
const externalLogged = "stepped by another process"

// statusField is a top-level field of `ntptool status --json`'s status,
// as text ("" if absent or the output is not JSON).
func statusField(js, key string) string {
	var v struct {
		Status map[string]any `json:"status"`
	}
	if json.Unmarshal([]byte(js), &v) != nil || v.Status[key] == nil {
		return ""
	}
	return fmt.Sprint(v.Status[key])
}

func isNumber(s string) bool {
	f := strings.Fields(s)
	if len(f) == 0 {
		return false
	}
	_, err := strconv.ParseFloat(f[0], 64)
	return err == nil
}

func grepLine(text, word string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(strings.ToLower(l), word) {
			return l
		}
	}
	return ""
}
