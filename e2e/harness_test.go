package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/e2e/guard"
	"github.com/ntptool/ntptool/e2e/report"
)

// TestNtptoolConfigsValidate: the configurations the pending scenarios give
// ntptool run must be valid today, so they work when the daemon lands.
func TestNtptoolConfigsValidate(t *testing.T) {
	for _, s := range scenarioList {
		sp := s.Spec(options{Port: 12345})
		if !strings.Contains(sp.Config, "[[source]]") {
			continue // chrony's, or none
		}
		t.Run(s.Name, func(t *testing.T) {
			if _, err := config.Parse([]byte(sp.Config), s.Name+".toml"); err != nil {
				t.Fatalf("config of %s: %v\n%s", s.Name, err, sp.Config)
			}
		})
	}
}

func TestScenarioList(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range scenarioList {
		if seen[s.Name] {
			t.Errorf("scenario %s twice", s.Name)
		}
		seen[s.Name] = true
		sp := s.Spec(options{Port: 12345})
		if sp.ServerPort != 12345 {
			t.Errorf("%s: server port %d", s.Name, sp.ServerPort)
		}
		if b := budget(sp); b.Minutes() > 20 {
			t.Errorf("%s: budget %v is over 20 min", s.Name, b)
		}
		// Every scenario's expectations judge an empty report as failed
		// (nothing passes by default).
		rows := s.Expect(report.New(s.Name), sp)
		failed := 0
		for _, r := range rows {
			if r.Status == fail {
				failed++
			}
		}
		if failed == 0 {
			t.Errorf("%s: an empty report passes every expectation", s.Name)
		}
	}
}

func TestSelectScenarios(t *testing.T) {
	names := func(ss []scenario) (run, skipped []string) {
		for _, s := range ss {
			if s.Pending == "" {
				run = append(run, s.Name)
			} else {
				skipped = append(skipped, s.Name)
			}
		}
		return run, skipped
	}
	sel, err := selectScenarios("", false)
	if err != nil {
		t.Fatal(err)
	}
	run, skipped := names(sel)
	want := []string{"smoke", "discipline", "slew", "chrony", "ntptool-vs-chrony", "dhcp-noh", "dhcp-noh-udhcpc", "dhcp-noh-dhcpcd",
		"dhcp-external", "dhcp-external-udhcpc", "dhcp-external-dhcpcd", "least-priv", "dhcp-hooks", "dhcp-hooks-back", "dhcp-hooks-udhcpc", "dhcp-hooks-dhcpcd"}
	if diff := cmp.Diff(want, run); diff != "" {
		t.Errorf("default run (-want +got):\n%s", diff)
	}
	if len(skipped) != 0 {
		t.Errorf("skipped by default: %v, want none", skipped)
	}
	sel, _ = selectScenarios("discipline,smoke", true)
	if run, _ := names(sel); !cmp.Equal(run, []string{"discipline", "smoke"}) {
		t.Errorf("-scenarios discipline,smoke -pending runs %v", run)
	}
	if _, err := selectScenarios("nope", false); err == nil {
		t.Error("unknown scenario accepted")
	}
}

func smokeReport() *report.Report {
	r := report.New("smoke")
	for k, v := range map[string]float64{
		"free_rate_ppm": -0.4, "free_rate_se_ppm": 0.3, "adjusted_rate_se_ppm": 0.4, "free_wander_ppm": 0, "free_window_sd_ppm": 0.5, "free_window_min_ppm": -2.6, "free_window_max_ppm": -1.5, "free_windows": 2,
		"offset_after_step_seconds": -30.1, "step_error_seconds": 0.0008, "kernel_freq_ppm": 200, "freq_seen_ppm": 201.7,
		"adjusted_window_sd_ppm": 2.5, "trace_init_steps": 1, "trace_init_frequency_sets": 1,
		"trace_query_udp_sends": 310, "query_packets_sent": 310,
	} {
		r.Set(k, v)
	}
	return r
}

func dhcpReport(lost string, lasted float64) *report.Report {
	r := report.New("dhcp-noh")
	r.Set("valid_lft_at_bind_seconds", 120)
	r.Set("address_lasted_after_bind_seconds", lasted)
	r.Set("acks_after_step", 0)
	r.Facts["address_lost"] = lost
	r.Facts["client_alive_at_end"] = "true"
	r.Facts["step_exit"] = "0"
	return r
}

// hooksReport is a good run of dhcp-hooks (-quick) as the guest reports it.
func hooksReport() *report.Report {
	r := report.New("dhcp-hooks")
	for k, v := range map[string]float64{
		"valid_lft_at_bind_seconds": 120, "step_back_1h_seconds": -3600.0004, "step_back_1h_acks": 1, "survived_back_1h_seconds": 150.2,
		"step_forward_1d_seconds": 86400.0003, "step_forward_1d_acks": 2, "survived_forward_1d_seconds": 150.1, "client_instances_at_end": 1,
	} {
		r.Set(k, v)
	}
	r.Facts["step_back_1h_exit"] = "0"
	r.Facts["step_forward_1d_exit"] = "0"
	r.Facts["lost_back_1h"] = "false"
	r.Facts["lost_forward_1d"] = "false"
	r.Facts["client_alive_at_end"] = "true"
	r.Facts["audit_journal"] = `{"seq":1,"kind":"step","delta_seconds":-3600}` + "\n" + `{"seq":2,"kind":"step","delta_seconds":86400}`
	return r
}

func statuses(rows []check) map[string]string {
	m := map[string]string{}
	for _, r := range rows {
		m[r.Expect] = r.Status
	}
	return m
}

// specOf is the named scenario's Spec.
func specOf(t *testing.T, name string, o options) report.Spec {
	t.Helper()
	for _, s := range scenarioList {
		if s.Name == name {
			return s.Spec(o)
		}
	}
	t.Fatalf("no scenario %s", name)
	return report.Spec{}
}

// disciplineReport is a good run of scenario 1 as the guest reports it.
func disciplineReport() *report.Report {
	r := report.New("discipline")
	for k, v := range map[string]float64{
		"free_rate_ppm": 1.6, "free_rate_se_ppm": 2.4, "free_wander_ppm": 0, "free_windows": 4,
		"offset_at_start_seconds": -30.0002, "steps": 1, "first_step_seconds": 0.86, "time_to_5ms_seconds": 1.15, "settle_5ms_seconds": 1.15,
		"samples_over_5ms_after_first": 0, "rms_offset_seconds": 0.00011, "max_abs_offset_window_seconds": 0.0002,
		"freq_error_ppm": 2.2, "residual_rate_ppm": 1.6, "drift_freq_error_ppm": 2.0,
		"adjtimex_writes_per_poll": 1, "adjtimex_reads_per_poll": 2, "adjtimex_esterror_us": 34, "adjtimex_maxerror_us": 6946,
	} {
		r.Set(k, v)
	}
	r.Facts["adjtimex_state"] = "TIME_OK"
	r.Facts["drift_file"] = "0.384720"
	r.Facts["hooks_ran"] = "pre,post"
	r.Facts["daemon_log"] = "level=INFO msg=\"step proposed\" step_seconds=-30.0\nlevel=INFO msg=\"clock stepped\" step_seconds=-30.000 proposed_seconds=-30.000"
	r.Facts["audit_journal"] = `{"seq":1,"time":"2026-12-01T12:00:30Z","kind":"step","delta_seconds":-30.0001,"applied":true}`
	return r
}

func slewReport() *report.Report {
	r := report.New("slew")
	for k, v := range map[string]float64{
		"offset_at_start_seconds": -0.5001, "steps": 0, "slew_rate_ppm": -5030, "slew_kernel_rate_ppm": -5001,
		"time_to_5ms_seconds": 99, "rms_offset_seconds": 0.0004,
	} {
		r.Set(k, v)
	}
	return r
}

func externalReport() *report.Report {
	r := report.New("dhcp-external")
	for k, v := range map[string]float64{
		"valid_lft_at_bind_seconds": 120, "by_hand_ack_seconds": 2.6, "renew_ack_seconds": 2.7, "daemon_sync_seconds": 3, "external_step_seconds": -3600.001,
		"external_detect_seconds":   0.05,
		"external_step_ack_seconds": 3.4, "survived_external_seconds": 151, "client_instances_at_end": 1,
	} {
		r.Set(k, v)
	}
	r.Facts["lost_external"] = "false"
	r.Facts["client_alive_at_end"] = "true"
	r.Facts["daemon_log"] = "level=WARN msg=\"the clock was stepped by another process\" step_seconds=-3600"
	return r
}

// leastPrivReport is a good run of scenario 6 as the guest reports it.
func leastPrivReport() *report.Report {
	r := disciplineReport()
	r.Scenario = "least-priv"
	for k, v := range map[string]float64{
		"daemon_threads": 7, "daemon_threads_with_other_creds": 0, "drift_freq_ppm": -1.2,
		"restart_freq_set_seconds": 0.05, "restart_first_freq_vs_drift_ppm": 0.0001, "restart_max_freq_vs_drift_ppm": 0.8,
		"restart_max_abs_offset_seconds": 0.0004,
	} {
		r.Set(k, v)
	}
	for k, v := range map[string]string{
		"daemon_euid": "101", "daemon_capeff": "0000000002000000", "daemon_capprm": "0000000002000000", "daemon_capbnd": "0000000002000000",
		"daemon_capamb": "0000000000000000", "helper_euid": "0", "helper_capeff": "000001fffdffffff", "restart_capeff": "0000000002000000",
		"restart_daemon_log": "level=INFO msg=\"drift file read\"",
	} {
		r.Facts[k] = v
	}
	return r
}

func TestExpectations(t *testing.T) {
	smokeSpec := specOf(t, "smoke", options{})
	dhcpSpec := specOf(t, "dhcp-noh", options{})
	discSpec := specOf(t, "discipline", options{})
	slewSpec := specOf(t, "slew", options{})
	extSpec := specOf(t, "dhcp-external", options{Quick: true})
	hooksSpec := specOf(t, "dhcp-hooks", options{Quick: true})
	privSpec := specOf(t, "least-priv", options{Quick: true})
	with := func(r *report.Report, f func(r *report.Report)) *report.Report { f(r); return r }
	tests := []struct {
		name     string
		rows     []check
		wantFail []string // expectations that must fail; all others pass or are INFO
	}{
		{"smoke, good", expectSmoke(smokeReport(), smokeSpec), nil},
		{"smoke, step 10 ms off and 20 ppm wrong", func() []check {
			r := smokeReport()
			r.Set("step_error_seconds", -0.010)
			r.Set("freq_seen_ppm", 180)
			return expectSmoke(r, smokeSpec)
		}(), []string{"step lands where set: |error| < 5 ms", "host sees +200 ppm (±10)"}},
		{"smoke, wide TCG spread widens the frequency tolerance", func() []check {
			r := smokeReport()
			r.Set("free_wander_ppm", 10)
			r.Set("freq_seen_ppm", 180)
			return expectSmoke(r, smokeSpec)
		}(), nil},
		{"dhcp, the seed failure reproduced", expectDHCPNoHooks(dhcpReport("true", 121), dhcpSpec), nil},
		// The negative control must fail when the address survives: a
		// passing positive result then means something.
		{"dhcp, address survived", expectDHCPNoHooks(dhcpReport("false", 180), dhcpSpec),
			[]string{"address IS lost after the -1 h step (the seed)", "lost at valid_lft expiry (110..135 s)"}},
		{"dhcp, lost too early", expectDHCPNoHooks(dhcpReport("true", 30), dhcpSpec), []string{"lost at valid_lft expiry (110..135 s)"}},
		{"discipline, good", expectDiscipline(disciplineReport(), discSpec), nil},
		{"discipline, two steps, slow, 20 ppm off, no hooks, no drift file, unsynchronised", expectDiscipline(with(disciplineReport(), func(r *report.Report) {
			r.Set("steps", 2)
			r.Set("time_to_5ms_seconds", 60)
			r.Set("freq_error_ppm", -20)
			r.Facts["hooks_ran"] = "pre"
			r.Facts["drift_file"] = ""
			r.Facts["drift_file_error"] = "open /var/lib/ntptool/drift: no such file or directory"
			r.Facts["adjtimex_state"] = "TIME_ERROR"
			r.Facts["daemon_log"] = "level=INFO msg=\"step proposed\" step_seconds=-30"
			r.Facts["audit_journal"] = `{"seq":1,"kind":"frequency"}`
		}), discSpec), []string{"steps the clock once", "frequency error vs guest's own rate (±10)", "adjtimex returns TIME_OK",
			"|offset| < 5 ms within 3 polls of the step", "drift file written", "pre- and post-step hooks ran", "the step is logged",
			"the step is in the audit journal"}},
		{"discipline, the guest did not start 30 s off", expectDiscipline(with(disciplineReport(), func(r *report.Report) {
			r.Set("offset_at_start_seconds", -29.4)
		}), discSpec), []string{"guest starts +30 s off the host"}},
		{"slew, good", expectSlew(slewReport(), slewSpec), nil},
		{"slew, stepped, at the default rate", expectSlew(with(slewReport(), func(r *report.Report) {
			r.Set("steps", 1)
			r.Set("slew_rate_ppm", -83333)
		}), slewSpec), []string{"never steps", "slews at the max rate 5000 ppm (-20%..+5%)"}},
		{"slew, too slow", expectSlew(with(slewReport(), func(r *report.Report) { r.Set("slew_rate_ppm", -3000) }), slewSpec),
			[]string{"slews at the max rate 5000 ppm (-20%..+5%)"}},
		{"dhcp-noh, ntptool step refused", expectDHCPNoHooks(with(dhcpReport("true", 121), func(r *report.Report) { r.Facts["step_exit"] = "1" }), dhcpSpec),
			[]string{"ntptool step --by -1h, renewers off: stepped (exit 0 or 3)"}},
		{"hooks, good", expectDHCPHooks(hooksReport(), hooksSpec), nil},
		{"hooks, lost after the backward step, no renewal, one journal entry", expectDHCPHooks(with(hooksReport(), func(r *report.Report) {
			r.Facts["lost_back_1h"] = "true"
			r.Set("survived_back_1h_seconds", 118)
			r.Set("step_back_1h_acks", 0)
			r.Facts["step_forward_1d_exit"] = "3"
			r.Facts["audit_journal"] = `{"seq":1,"kind":"step"}`
		}), hooksSpec), []string{"-1h: address lost", "-1h: watched ≥ 140 s (valid_lft 120 s)", "-1h: its hooks renewed the lease",
			"ntptool step --by +24h exits 0", "the 2 steps are in the audit journal"}},
		{"least-priv, good", expectLeastPriv(leastPrivReport(), privSpec), nil},
		{"least-priv, all caps kept, helper with CAP_SYS_TIME, dishonest maxerror, relearned", expectLeastPriv(with(leastPrivReport(), func(r *report.Report) {
			r.Facts["daemon_euid"] = "0"
			r.Facts["daemon_capeff"] = "000001ffffffffff"
			r.Facts["helper_capeff"] = "000001ffffffffff"
			r.Set("adjtimex_maxerror_us", 100)
			r.Set("adjtimex_esterror_us", 200)
			r.Set("daemon_threads_with_other_creds", 3)
			r.Set("restart_first_freq_vs_drift_ppm", 200)
			r.Set("restart_max_freq_vs_drift_ppm", 200)
			r.Facts["restart_daemon_log"] = "level=INFO msg=\"clock stepped\" step_seconds=0.2\nlevel=ERROR msg=\"audit journal: entry not written\""
		}), privSpec), []string{"ntptool run switched to user ntptool (euid)", "CapEff: only CAP_SYS_TIME", "hook helper: root without CAP_SYS_TIME",
			"kernel maxerror ≥ max |offset| measured, < 100 ms", "kernel esterror > 0 and ≤ maxerror", "every thread the same (of daemon_threads)",
			"to the drift file's (±0.5 ppm)", "no frequency transient: max |status freq − drift|, 90 s (≤ 5 ppm)", "no step after the restart",
			"no journal write failed"}},
		{"hooks, the backward step only", expectDHCPHooks(with(hooksReport(), func(r *report.Report) {
			r.Facts["audit_journal"] = `{"seq":1,"kind":"step","delta_seconds":-3600}`
			r.Set("survived_back_1h_seconds", 140.5)
		}), specOf(t, "dhcp-hooks-back", options{Quick: true})), nil},
		{"hooks, the backward step only, lost", expectDHCPHooks(with(hooksReport(), func(r *report.Report) {
			r.Facts["lost_back_1h"] = "true"
			r.Set("survived_back_1h_seconds", 118)
		}), specOf(t, "dhcp-hooks-back", options{Quick: true})), []string{"-1h: address lost", "-1h: watched ≥ 130 s (valid_lft 120 s)"}},
		{"external, good", expectDHCPExternal(externalReport(), extSpec), nil},
		{"external, not detected, address lost", expectDHCPExternal(with(externalReport(), func(r *report.Report) {
			delete(r.Metrics, "external_step_ack_seconds")
			delete(r.Metrics, "external_detect_seconds")
			r.Facts["external_step_error"] = "no DHCPACK within 5s"
			r.Facts["lost_external"] = "true"
			r.Set("survived_external_seconds", 118)
			r.Facts["daemon_log"] = ""
			r.Set("client_instances_at_end", 2)
		}), extSpec), []string{"ntptool run detects it within 1 s (log stamp)", "and renews: DHCPACK within 1 s of by hand (≤ 3.60 s)", "address lost after it", "watched ≥ 140 s (valid_lft 120 s)",
			"the daemon logged the external step", "one instance of it, not two"}},
		{"external, slow renew", expectDHCPExternal(with(externalReport(), func(r *report.Report) { r.Set("renew_ack_seconds", 3.7) }), extSpec),
			[]string{"ntptool renew: DHCPACK within 1 s of by hand (≤ 3.60 s)"}},
		{"external, no baseline: strict 1 s", expectDHCPExternal(with(externalReport(), func(r *report.Report) {
			delete(r.Metrics, "by_hand_ack_seconds")
			r.Facts["by_hand_error"] = "no DHCPACK within 15s"
		}), extSpec), []string{"ntptool renew: DHCPACK within 1 s of by hand (≤ 1.00 s)", "and renews: DHCPACK within 1 s of by hand (≤ 1.00 s)",
			"dhclient renewed by hand (SIGTERM, restart): DHCPACK after"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := statuses(tc.rows)
			want := map[string]bool{}
			for _, w := range tc.wantFail {
				want[w] = true
				if st[w] != fail {
					t.Errorf("%q: %s, want FAIL", w, st[w])
				}
			}
			for e, s := range st {
				if !want[e] && s == fail {
					t.Errorf("%q failed unexpectedly", e)
				}
			}
		})
	}
}

func TestModuleOrder(t *testing.T) {
	idx := map[string]string{"virtio_net": "n", "net_failover": "nf", "failover": "f", "virtio_pci": "p", "virtio": "v", "veth": "e", "a": "a", "b": "b"}
	deps := map[string][]string{"n": {"net_failover", "virtio"}, "nf": {"failover"}, "p": {"virtio"}, "a": {"b"}, "b": {"a"}}
	depends := func(p string) ([]string, error) { return deps[p], nil }
	got, err := moduleOrder([]string{"virtio_pci", "virtio_net", "veth"}, idx, depends)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"virtio", "virtio_pci", "failover", "net_failover", "virtio_net", "veth"}, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	if _, err := moduleOrder([]string{"a"}, idx, depends); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: err = %v", err)
	}
	if _, err := moduleOrder([]string{"e1000"}, idx, depends); err == nil {
		t.Error("missing module: no error")
	}
	boom := errors.New("boom")
	if _, err := moduleOrder([]string{"veth"}, idx, func(string) ([]string, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("depends error lost: %v", err)
	}
}

func TestParseModinfoDepends(t *testing.T) {
	data := []byte("license=GPL\x00depends=net_failover,virtio-ring\x00retpoline=Y\x00")
	if diff := cmp.Diff([]string{"net_failover", "virtio_ring"}, parseModinfoDepends(data)); diff != "" {
		t.Error(diff)
	}
	if got := parseModinfoDepends([]byte("depends=\x00")); len(got) != 0 {
		t.Errorf("empty depends = %v", got)
	}
}

func TestParseLdd(t *testing.T) {
	out := `	linux-vdso.so.1 (0x00007ffc)
	libcap-ng.so.0 => /lib/x86_64-linux-gnu/libcap-ng.so.0 (0x00007f8b)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f8a)
	/lib64/ld-linux-x86-64.so.2 (0x00007f8c)
`
	got, err := parseLdd(out, "setpriv", "")
	if err != nil {
		t.Fatal(err)
	}
	want := []lib{{"/lib/x86_64-linux-gnu/libcap-ng.so.0", "/lib/x86_64-linux-gnu/libcap-ng.so.0"},
		{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"},
		{"/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2"}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(lib{})); diff != "" {
		t.Error(diff)
	}
	if _, err := parseLdd("\tlibgnutls.so.30 => not found\n", "chronyd", ""); err == nil {
		t.Error("a missing library was not reported")
	}
}

func TestQemuArgs(t *testing.T) {
	args := strings.Join(qemuArgs(boot{Kernel: "k", Initrd: "i", Append: "x=1"}), " ")
	for _, want := range []string{"-accel tcg", "-no-reboot", "-nodefaults", "-netdev user,id=n0", guard.Marker, "x=1"} {
		if !strings.Contains(args, want) {
			t.Errorf("qemu command line lacks %q: %s", want, args)
		}
	}
	if strings.Contains(args, "kvm") {
		t.Errorf("qemu command line asks for KVM: %s", args)
	}
}

func FuzzParseModinfoDepends(f *testing.F) {
	f.Add([]byte("depends=a,b\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, d := range parseModinfoDepends(b) {
			if d == "" || strings.ContainsAny(d, ",-") {
				t.Fatalf("bad module name %q", d)
			}
		}
	})
}

func FuzzParseLdd(f *testing.F) {
	f.Add("\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n\t/lib64/ld-linux-x86-64.so.2 (0x2)\n")
	f.Fuzz(func(t *testing.T, s string) {
		libs, err := parseLdd(s, "x", "/opt/lib")
		if err != nil {
			return
		}
		for _, l := range libs {
			if !strings.HasPrefix(l.src, "/") || !strings.HasPrefix(l.dst, "/") {
				t.Fatalf("relative path in %+v", l)
			}
		}
	})
}
