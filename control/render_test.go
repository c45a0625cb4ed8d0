package control

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRenderStatus(t *testing.T) {
	var b strings.Builder
	st := fakeSnapshot().Status
	if err := RenderStatus(&b, &st); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Reference ID    : C0000201 (ntp1.example.net, 192.0.2.1:123)\n",
		"Stratum         : 3\n",
		"Ref time (UTC)  : Tue Nov 03 11:59:37.000 2026\n",
		"System time     : 0.000001234 seconds fast of NTP time\n",
		"Last offset     : -0.000000456 seconds\n",
		"RMS offset      : 0.000001000 seconds\n",
		"Frequency       : 12.345 ppm slow (corrected by +12.345 ppm)\n",
		"Residual freq   : +0.001 ppm\n",
		"Skew            : 0.010 ppm\n",
		"Root delay      : 0.000456000 seconds\n",
		"Root dispersion : 0.000123000 seconds\n",
		"Update interval : 64.2 seconds\n",
		"Leap status     : Normal\n",
		"Sync state      : synchronised\n",
		"Clock control   : yes\n",
		"Last error      : -\n",
		"Next poll       : in 12.3 seconds\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	unsync := Status{SyncState: StateUnsynchronised, Stratum: 16, Leap: LeapUnsynchronised, SystemTimeOffsetSeconds: -0.25, FrequencyPPM: -3, LastError: "panic threshold"}
	b.Reset()
	_ = RenderStatus(&b, &unsync)
	for _, want := range []string{"Reference ID    : -\n", "Ref time (UTC)  : -\n", "0.250000000 seconds slow of NTP time", "3.000 ppm fast", "Not synchronised", "Clock control   : no", "Last error      : panic threshold"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
}

func TestRenderSources(t *testing.T) {
	for _, verbose := range []bool{false, true} {
		var b strings.Builder
		if err := RenderSources(&b, fakeSnapshot().Sources, verbose); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if strings.Contains(b.String(), "Tally:") != verbose {
			t.Errorf("verbose %v, legend present %v", verbose, !verbose)
		}
		rows := lines[len(lines)-3:]
		for i, want := range [][]string{
			{"* ntp1.example.net ", " 192.0.2.1:123 ", "  2    6   377 ", " 23s ", "+12.0us[+15.0us] +/- 200.0us", "250.0us", "15.2us"},
			{"? pool.example.net ", " 198.51.100.9:123 ", "  0    6     0 ", " - "},
			{"x liar.example.net ", " [2001:db8::1]:123 ", "  1    7    17 ", " 12m ", "+500.0ms[+500.0ms] +/- 1.0ms", "2.0ms", "100.0us"},
		} {
			for _, w := range want {
				if !strings.Contains(rows[i], w) {
					t.Errorf("row %d %q lacks %q", i, rows[i], w)
				}
			}
		}
		if !strings.HasPrefix(lines[len(lines)-5], "S Name") {
			t.Errorf("header %q", lines[len(lines)-5])
		}
	}
}

func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		s      float64
		signed bool
		want   string
	}{{12e-9, true, "+12ns"}, {-12.3e-6, true, "-12.3us"}, {0.25, false, "250.0ms"}, {1.5, true, "+1.500s"}, {0, true, "+0ns"}} {
		if got := seconds(tc.s, tc.signed); got != tc.want {
			t.Errorf("seconds(%g) = %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestSyncCheck(t *testing.T) {
	synced := &Status{SyncState: StateSynchronised, SystemTimeOffsetSeconds: -0.002}
	tests := []struct {
		name string
		st   *Status
		max  time.Duration
		ok   bool
	}{
		{"synchronised, any offset", synced, 0, true},
		{"within the bound", synced, 5 * time.Millisecond, true},
		{"beyond the bound", synced, time.Millisecond, false},
		{"holdover does not count", &Status{SyncState: StateHoldover}, 0, false},
		{"unsynchronised", &Status{SyncState: StateUnsynchronised}, 0, false},
		{"no status", nil, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason := SyncCheck(tc.st, tc.max)
			if ok != tc.ok || ok != (reason == "") {
				t.Errorf("SyncCheck = %v, %q", ok, reason)
			}
		})
	}
}

// WaitSync retries a failing daemon, waits through unsynchronised and
// too-far states on the ticks it is given, and stops when in the bound.
func TestWaitSync(t *testing.T) {
	answers := []struct {
		st  *Status
		err error
	}{
		{nil, errors.New("connect: no such file")},
		{&Status{SyncState: StateUnsynchronised}, nil},
		{&Status{SyncState: StateSynchronised, SystemTimeOffsetSeconds: 0.5}, nil},
		{&Status{SyncState: StateSynchronised, SystemTimeOffsetSeconds: 0.0001}, nil},
	}
	calls := 0
	query := func(context.Context) (*Status, error) {
		a := answers[min(calls, len(answers)-1)]
		calls++
		return a.st, a.err
	}
	tick := make(chan time.Time, 10)
	for range 10 {
		tick <- time.Time{}
	}
	st, err := WaitSync(context.Background(), query, 10*time.Millisecond, tick)
	if err != nil || calls != 4 || st.SystemTimeOffsetSeconds != 0.0001 {
		t.Errorf("WaitSync = %+v, %v after %d queries", st, err, calls)
	}
	// Never synchronised: the context ends it, with the reason.
	ctx, cancel := context.WithCancel(context.Background())
	calls = 1
	n := 0
	tickOnce := make(chan time.Time)
	go func() { tickOnce <- time.Time{}; cancel() }()
	st, err = WaitSync(ctx, func(context.Context) (*Status, error) {
		n++
		return &Status{SyncState: StateUnsynchronised}, nil
	}, 0, tickOnce)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "sync state unsynchronised") || st == nil || n < 2 {
		t.Errorf("WaitSync = %+v, %v after %d queries", st, err, n)
	}
}
