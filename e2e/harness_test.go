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
	if diff := cmp.Diff([]string{"smoke", "chrony", "dhcp-noh", "dhcp-noh-udhcpc", "dhcp-noh-dhcpcd"}, run); diff != "" {
		t.Errorf("default run (-want +got):\n%s", diff)
	}
	if len(skipped) != 6 {
		t.Errorf("skipped %v, want the 6 that need ntptool run", skipped)
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
	return r
}

func statuses(rows []check) map[string]string {
	m := map[string]string{}
	for _, r := range rows {
		m[r.Expect] = r.Status
	}
	return m
}

func TestExpectations(t *testing.T) {
	smokeSpec := scenarioList[0].Spec(options{})
	dhcpSpec := scenarioList[2].Spec(options{})
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
