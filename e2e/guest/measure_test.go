package main

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ntptool/ntptool/e2e/report"
)

// line makes samples of host - guest for a guest running ratePPM fast,
// every dt seconds, with a ±jitter alternating error.
func line(n int, dt, off0, ratePPM, jitter float64) []sample {
	ss := make([]sample, n)
	for i := range ss {
		t := float64(i) * dt
		j := jitter
		if i%2 == 1 {
			j = -jitter
		}
		ss[i] = sample{T: 100 + t, Offset: off0 - ratePPM*1e-6*t + j, Delay: 1e-4}
	}
	return ss
}

func TestFitRate(t *testing.T) {
	tests := []struct {
		name    string
		ss      []sample
		wantPPM float64
		tolPPM  float64
		wantErr bool
	}{
		{"guest 200 ppm fast", line(60, 1, -30, 200, 0), 200, 1e-6, false},
		{"guest 35 ppm slow, jitter", line(120, 0.5, 0.1, -35, 50e-6), -35, 2, false},
		{"two samples", line(2, 1, 0, 1, 0), 0, 0, true},
		{"no time span", []sample{{T: 1}, {T: 1}, {T: 1}}, 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := fitRate(tc.ss)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("fitRate = %+v, want an error", f)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(f.RatePPM-tc.wantPPM) > tc.tolPPM {
				t.Errorf("rate %+.4f ppm, want %+.4f ± %g", f.RatePPM, tc.wantPPM, tc.tolPPM)
			}
		})
	}
}

func TestWindowRates(t *testing.T) {
	ss := append(line(30, 1, 0, 10, 0), line(30, 1, 0, 0, 0)...)
	for i := 30; i < 60; i++ { // second half: 50 ppm, continuing in time
		ss[i].T = 130 + float64(i-30)
		ss[i].Offset = -50e-6 * float64(i-30)
	}
	got := windowRates(ss, 15)
	want := []float64{10, 10, 50, 50}
	if len(got) != len(want) {
		t.Fatalf("windows %v, want %v", got, want)
	}
	for i := range want {
		if math.Abs(got[i].RatePPM-want[i]) > 1e-6 {
			t.Errorf("window %d: %+.3f ppm, want %+.3f", i, got[i].RatePPM, want[i])
		}
	}
	// Noise-free windows: all of the spread (20 ppm) is wander.
	sd, se, wd := wander(got)
	if math.Abs(sd-20) > 1e-6 || se > 1e-6 || math.Abs(wd-20) > 1e-6 {
		t.Errorf("wander: sd %.3f se %.3f wander %.3f, want 20, 0, 20", sd, se, wd)
	}
}

func TestWanderNoiseOnly(t *testing.T) {
	// One rate, noisy offsets: the windows' spread is no more than their
	// standard errors explain, so the wander is (nearly) zero.
	ss := line(600, 0.5, 0, 3, 300e-6)
	sd, se, wd := wander(windowRates(ss, 15))
	if se <= 0 || wd > sd || wd > se {
		t.Errorf("sd %.3f se %.3f wander %.3f: want wander <= se", sd, se, wd)
	}
}

func TestSummarise(t *testing.T) {
	// Daemon started at t0 = 100: 30 s off for two samples, then 4 ms,
	// one excursion to 6 ms, then 1 ms for good.
	offs := []float64{-30, -30, 0.004, 0.006, 0.001, -0.001, 0.001, -0.001}
	ss := make([]sample, len(offs))
	for i, o := range offs {
		ss[i] = sample{T: 102 + 2*float64(i), Offset: o}
	}
	rep := report.New("x")
	summarise(rep, ss, 100, 118, 6)
	want := map[string]float64{
		"time_to_5ms_seconds":           6,
		"settle_5ms_seconds":            10,
		"rms_offset_seconds":            0.001,
		"max_abs_offset_window_seconds": 0.001,
		"window_samples":                3,
		"final_offset_seconds":          -0.001,
	}
	for k, w := range want {
		if g, ok := rep.Metric(k); !ok || math.Abs(g-w) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, w)
		}
	}
	// Never below 5 ms: no time, reported as a fact.
	rep = report.New("y")
	summarise(rep, line(10, 1, 1, 0, 0), 100, 110, 5)
	if _, ok := rep.Metric("time_to_5ms_seconds"); ok {
		t.Error("time_to_5ms_seconds set although the offset never went below 5 ms")
	}
	if rep.Facts["time_to_5ms_seconds"] != "NaN" {
		t.Errorf("fact = %q, want NaN", rep.Facts["time_to_5ms_seconds"])
	}
}

func TestParseQuery(t *testing.T) {
	ok := `{"servers":[{"server":"10.0.2.2:123","address":"10.0.2.2:123","valid":true,"verdict":"ok","offset_seconds":-30.0001,"delay_seconds":0.0003,"replies":5}],"valid":1}`
	tests := []struct {
		name    string
		out     string
		wantErr string
	}{
		{"valid", ok, ""},
		{"timeout", `{"servers":[{"server":"s","address":"a","valid":false,"verdict":"timeout","error":"no reply","replies":0}],"valid":0}`, "timeout"},
		{"no servers", `{"servers":[],"valid":0}`, "0 servers"},
		{"not json", "ntptool: boom", "output"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseQuery([]byte(tc.out), 7)
			if tc.wantErr == "" {
				if err != nil || s.Offset != -30.0001 || s.Delay != 0.0003 || s.T != 7 {
					t.Fatalf("parseQuery = %+v, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseAddr(t *testing.T) {
	tests := []struct {
		out   string
		cidr  string
		valid int
	}{
		{"5: vc    inet 198.18.0.128/24 brd 198.18.0.255 scope global dynamic vc\\       valid_lft 117sec preferred_lft 117sec", "198.18.0.128/24", 117},
		{"5: vc    inet 198.18.0.128/24 scope global vc\\       valid_lft forever preferred_lft forever", "198.18.0.128/24", -1},
		{"", "", 0},
	}
	for _, tc := range tests {
		cidr, v := parseAddr(tc.out)
		if cidr != tc.cidr || v != tc.valid {
			t.Errorf("parseAddr(%q) = %q, %d; want %q, %d", tc.out, cidr, v, tc.cidr, tc.valid)
		}
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Add([]byte(`{"servers":[{"valid":true,"offset_seconds":1,"delay_seconds":0}]}`))
	f.Add([]byte(`{"servers":[{"valid":true}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseQuery(b, 1)
		if err == nil && (math.IsNaN(s.Offset) || s.T != 1) {
			t.Fatalf("bad sample %+v", s)
		}
	})
}

func FuzzParseAddr(f *testing.F) {
	f.Add("inet 198.18.0.128/24 valid_lft 117sec")
	f.Add("inet 1.2.3.4/8 valid_lft 99999999999999999999999sec")
	f.Fuzz(func(t *testing.T, s string) {
		cidr, v := parseAddr(s)
		if cidr == "" && v != 0 {
			t.Fatalf("lifetime %d without an address", v)
		}
	})
}

func TestStatState(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       byte
	}{
		{"running", "113 (dhclient) S 1 113 113 0 -1", 'S'},
		{"zombie", "144 (setpriv) Z 1 144 144 0 -1", 'Z'},
		{"name with spaces and parentheses", "7 (a) b (c)) R 1", 'R'},
		{"truncated", "7 (dhclient)", 0},
		{"no parenthesis", "garbage", 0},
		{"empty", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statState([]byte(tc.line)); got != tc.want {
				t.Errorf("statState(%q) = %q, want %q", tc.line, got, tc.want)
			}
		})
	}
}

func TestHostAxisPPM(t *testing.T) {
	for _, tc := range []struct{ in, want, tol float64 }{
		{0, 0, 1e-9},
		{200, 200.04, 0.001},
		// A slew at −5000 ppm of the guest's rate shows as −5025 ppm
		// against its own slewed CLOCK_MONOTONIC.
		{-5025.13, -5000, 0.01},
	} {
		if got := hostAxisPPM(tc.in); math.Abs(got-tc.want) > tc.tol {
			t.Errorf("hostAxisPPM(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestIsClient(t *testing.T) {
	for _, tc := range []struct {
		argv   []string
		client string
		want   bool
	}{
		{[]string{"/usr/sbin/dhclient", "-4", "vc"}, "dhclient", true},
		{[]string{"/usr/bin/setpriv", "--bounding-set", "-sys_time", "--", "/usr/sbin/dhclient"}, "dhclient", false},
		{[]string{"/bin/busybox", "udhcpc", "-f"}, "udhcpc", true},
		{[]string{"/bin/busybox", "date", "-s"}, "udhcpc", false},
		{[]string{"dhcpcd: vc [ip4]"}, "dhcpcd", true}, // retitled, in one string
		{[]string{"dhcpcd:", "[privileged", "proxy]"}, "dhcpcd", true},
		{nil, "dhclient", false},
	} {
		if got := isClient(tc.argv, tc.client); got != tc.want {
			t.Errorf("isClient(%q, %s) = %v, want %v", tc.argv, tc.client, got, tc.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	st, ok := parseStat([]byte("152 (dhclient) S 1 152 152 0 -1 4194368"))
	if !ok || st != (procStat{comm: "dhclient", state: 'S', ppid: 1}) {
		t.Errorf("parseStat = %+v, %v", st, ok)
	}
	for _, bad := range []string{"", "152 (dhclient)", "152 (dhclient) S x", "152 dhclient S 1", "1 (a) SS 1"} {
		if _, ok := parseStat([]byte(bad)); ok {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
}

func TestLogStamp(t *testing.T) {
	log := `[  15.521] level=INFO msg=state state=synchronised
[  16.002] level=INFO msg="clock step detected" step_seconds=1.16 own=true leap=false
[  16.813] level=INFO msg="clock step detected" step_seconds=-3600.49 own=false leap=false
[bad] level=INFO msg="clock step detected" own=false`
	for _, tc := range []struct {
		name string
		from float64
		want float64
		ok   bool
	}{
		{"the external one", 16, 16.813, true},
		{"not before from", 17, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := logStamp(log, `msg="clock step detected"`, "own=false", tc.from)
			if ok != tc.ok || got != tc.want {
				t.Errorf("logStamp = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestParseProcStatus(t *testing.T) {
	text := "Name:\tntptoold\nUid:\t0\t101\t101\t101\nCapEff:\t0000000002000000\nbroken line\nGroups:\t\n"
	got := parseProcStatus(text)
	tests := []struct{ key, want string }{
		{"Name", "ntptoold"}, {"Uid", "0 101 101 101"}, {"CapEff", "0000000002000000"}, {"Groups", ""}, {"broken line", ""},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			if got[tc.key] != tc.want {
				t.Errorf("%s = %q, want %q", tc.key, got[tc.key], tc.want)
			}
		})
	}
}

// TestDHCPMessages keeps dnsmasq's message lines, newest last, and drops
// the options it logs with each.
func TestDHCPMessages(t *testing.T) {
	log := `Dec  2 12:44:29 dnsmasq-dhcp[100]: 26 available DHCP range: 198.18.0.100 -- 198.18.0.150
Dec  2 12:44:29 dnsmasq-dhcp[100]: 26 DHCPREQUEST(vs) 198.18.0.108 26:f9:83:23:ca:1a 
Dec  2 12:44:29 dnsmasq-dhcp[100]: 26 DHCPNAK(vs) 198.18.0.108 26:f9:83:23:ca:1a lease not found
Dec  2 12:44:29 dnsmasq-dhcp[100]: 26 sent size:  1 option: 53 message-type  6
Dec  2 12:46:17 dnsmasq-dhcp[100]: 15 DHCPDISCOVER(vs) 26:f9:83:23:ca:1a 
Dec  2 12:46:17 dnsmasq-dhcp[100]: 15 DHCPOFFER(vs) 198.18.0.108 26:f9:83:23:ca:1a `
	for _, tt := range []struct {
		n    int
		want []string
	}{
		{10, []string{"DHCPREQUEST", "DHCPNAK", "DHCPDISCOVER", "DHCPOFFER"}},
		{2, []string{"DHCPDISCOVER", "DHCPOFFER"}},
	} {
		lines := strings.Split(dhcpMessages(log, tt.n), "\n")
		if len(lines) != len(tt.want) {
			t.Fatalf("n=%d: %q; want %d lines", tt.n, lines, len(tt.want))
		}
		for i, w := range tt.want {
			if !strings.Contains(lines[i], " "+w+"(") {
				t.Errorf("n=%d: line %d %q; want %s", tt.n, i, lines[i], w)
			}
		}
	}
}

// TestCPUUse: CPU time from /proc/PID/stat (utime + stime), new processes
// counted from zero, a reused PID from its own start, the busiest first.
func TestCPUUse(t *testing.T) {
	stat := func(pid, comm string, ticks int) procStat {
		st, ok := parseStat([]byte(pid + " (" + comm + ") S 1 1 1 0 -1 4194560 100 0 0 0 " + strconv.Itoa(ticks) + " 0 0 0 20 0 1 0"))
		if !ok {
			t.Fatal("parseStat")
		}
		return st
	}
	before := cpuSample{procs: map[int]procStat{90: stat("90", "ntptool", 40), 95: stat("95", "sh", 500)}, idle: 100, total: 200}
	after := cpuSample{procs: map[int]procStat{90: stat("90", "ntptool", 81), 95: stat("95", "dhclient", 22), 150: stat("150", "dnsmasq", 3)}, idle: 112, total: 300}
	want := "idle 12% of 1.00 s; ntptool[90] 0.41 s, dhclient[95] 0.22 s, dnsmasq[150] 0.03 s"
	if got := cpuUse(before, after); got != want {
		t.Errorf("cpuUse = %q\nwant %q", got, want)
	}
}

// TestTokenCounter counts DHCPACKs in a log that grows between reads, a
// token split across two writes included, and starts over on a new log.
func TestTokenCounter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dnsmasq.log")
	var c tokenCounter
	for _, tc := range []struct {
		write string
		trunc bool
		want  int
	}{
		{"", false, 0},
		{"x DHCPREQUEST(vs) a\nx DHCPACK(vs) a\n", false, 1},
		{"x DHCPACK(vs) b\nx DHCP", false, 2},
		{"ACK(vs) c\n", false, 3},
		{"nothing\n", false, 3},
		{"x DHCPACK(vs) new log\n", true, 1},
	} {
		flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
		if tc.trunc {
			flags = os.O_WRONLY | os.O_TRUNC
		}
		f, err := os.OpenFile(path, flags, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(tc.write)
		f.Close()
		if got := c.count(path); got != tc.want {
			t.Errorf("after %q: %d; want %d", tc.write, got, tc.want)
		}
	}
}
