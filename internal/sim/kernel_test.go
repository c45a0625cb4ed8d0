package sim

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

func newTestKernel(t *testing.T, cfg ClockConfig) *Kernel {
	t.Helper()
	var g *Gen
	if cfg.Wander != 0 {
		g = NewGen(1)
	}
	k, err := NewKernel(cfg, g)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// adjtimex calls k.Adjtimex and fails the test on an error.
func adjtimex(t *testing.T, k *Kernel, tx unix.Timex) (int, unix.Timex) {
	t.Helper()
	state, err := k.Adjtimex(&tx)
	if err != nil {
		t.Fatalf("adjtimex(modes %#x): %v", tx.Modes, err)
	}
	return state, tx
}

// sec converts seconds to a true time.
func sec(s float64) time.Duration { return time.Duration(math.Round(s * 1e9)) }

// synced clears STA_UNSYNC and maxerror, as a synchronised daemon does.
func synced(t *testing.T, k *Kernel) {
	t.Helper()
	adjtimex(t, k, unix.Timex{Modes: unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR})
}

func approx(tol float64) cmp.Option { return cmpopts.EquateApprox(0, tol) }

func TestKernelBootState(t *testing.T) {
	k := newTestKernel(t, ClockConfig{})
	state, tx := adjtimex(t, k, unix.Timex{})
	type view struct {
		State, Status     int
		Tick, Freq, Const int64
		MaxErr, EstErr    int64
		Tolerance         int64
	}
	want := view{unix.TIME_ERROR, unix.STA_UNSYNC, 10000, 0, 2, 16000000, 16000000, 500 << 16}
	got := view{state, int(tx.Status), tx.Tick, tx.Freq, tx.Constant, tx.Maxerror, tx.Esterror, tx.Tolerance}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if k.Adjustments() != 0 {
		t.Errorf("a read counted as %d adjustments", k.Adjustments())
	}
}

func TestKernelFrequency(t *testing.T) {
	tests := []struct {
		name        string
		freqPPM     float64
		wantFreqPPM float64
	}{
		{"zero", 0, 0},
		{"positive", 100, 100},
		{"fraction", -12.5, -12.5},
		{"limit", 500, 500},
		{"clamped above", 501, 500},
		{"clamped below", -1000, -500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newTestKernel(t, ClockConfig{})
			k.AdvanceTo(sec(0.5))
			_, tx := adjtimex(t, k, unix.Timex{Modes: unix.ADJ_FREQUENCY, Freq: int64(tt.freqPPM * 65536)})
			k.AdvanceTo(sec(10.5)) // acts at once, mid-second
			got := []float64{float64(tx.Freq) / 65536, k.FreqErrorPPB(), k.Offset()}
			want := []float64{tt.wantFreqPPM, tt.wantFreqPPM * 1e3, tt.wantFreqPPM * 1e-6 * 10}
			if diff := cmp.Diff(want, got, approx(1e-12)); diff != "" {
				t.Errorf("freq ppm, error ppb, offset after 10 s (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKernelTick(t *testing.T) {
	tests := []struct {
		tick     int64
		wantErr  error
		wantTick int64
	}{
		{10000, nil, 10000},
		{9000, nil, 9000},
		{11000, nil, 11000},
		{10001, nil, 10001},
		{8999, unix.EINVAL, 10000},
		{11001, unix.EINVAL, 10000},
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			k := newTestKernel(t, ClockConfig{})
			tx := unix.Timex{Modes: unix.ADJ_TICK | unix.ADJ_FREQUENCY, Tick: tt.tick, Freq: 7 << 16}
			state, err := k.Adjtimex(&tx)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("tick %d: err %v, want %v", tt.tick, err, tt.wantErr)
			}
			if err != nil && (state != -1 || k.Adjustments() != 0) {
				t.Errorf("failed call: state %d, %d adjustments; want -1, 0", state, k.Adjustments())
			}
			_, tx = adjtimex(t, k, unix.Timex{})
			wantFreq := int64(7 << 16)
			if tt.wantErr != nil {
				wantFreq = 0 // the failed call changed nothing
			}
			if diff := cmp.Diff([]int64{tt.wantTick, wantFreq}, []int64{tx.Tick, tx.Freq}); diff != "" {
				t.Errorf("tick, freq (-want +got):\n%s", diff)
			}
			k.AdvanceTo(100 * time.Second)
			wantRate := float64(tt.wantTick)/10000 + float64(wantFreq)/65536e6
			if diff := cmp.Diff(100*(wantRate-1), k.Offset(), approx(1e-12)); diff != "" {
				t.Errorf("offset after 100 s (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKernelRate checks total = (1 + f_raw)·(tick/10000 + freq/1e6) and
// that tick 10000 and freq 0 run at exactly 1 + f_raw.
func TestKernelRate(t *testing.T) {
	tests := []struct {
		f0      float64
		tick    int64
		freqPPM float64
	}{
		{1e-4, 10000, 0},
		{-3e-5, 10000, 0},
		{1e-4, 10000, -100},
		{1e-4, 9990, 0},
		{1e-4, 10100, 50},
		{-2e-4, 9000, -500},
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			k := newTestKernel(t, ClockConfig{F0: tt.f0})
			adjtimex(t, k, unix.Timex{Modes: unix.ADJ_TICK | unix.ADJ_FREQUENCY, Tick: tt.tick, Freq: int64(tt.freqPPM * 65536)})
			k.AdvanceTo(1000 * time.Second)
			total := (1 + tt.f0) * (float64(tt.tick)/10000 + tt.freqPPM/1e6)
			if diff := cmp.Diff((total-1)*1e9, k.FreqErrorPPB(), approx(1e-6)); diff != "" {
				t.Errorf("frequency error ppb (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff((total-1)*1000, k.Offset(), approx(1e-12)); diff != "" {
				t.Errorf("offset after 1000 s (-want +got):\n%s", diff)
			}
			if tt.tick == 10000 && tt.freqPPM == 0 && k.FreqErrorPPB() != k.RawFreq()*1e9 {
				t.Errorf("rate %g ppb, want exactly f_raw %g", k.FreqErrorPPB(), k.RawFreq()*1e9)
			}
		})
	}
}

func TestKernelPLL(t *testing.T) {
	const pll = unix.STA_PLL
	tests := []struct {
		name        string
		status      int32
		micro       bool
		constant    int64
		waitS       int // seconds between turning STA_PLL on and ADJ_OFFSET
		offset      int64
		wantFreqPPM float64
		wantSlewS   []float64 // phase slewed in the 3 seconds after the next tick
	}{
		{
			// pll = 1 ms · 16 s / (4·4·1)^2 = 62.5 ppm; slew offset/4 each second.
			name: "nano tc 0", status: pll, constant: 0, waitS: 16, offset: 1000000,
			wantFreqPPM: 62.5, wantSlewS: []float64{250e-6, 187.5e-6, 140.625e-6},
		},
		{
			// tc 2: pll = −2 ms · 64 / 64^2; slew offset/16.
			name: "nano tc 2", status: pll, constant: 2, waitS: 64, offset: -2000000,
			wantFreqPPM: -31.25, wantSlewS: []float64{-125e-6, -117.1875e-6, -109.86328125e-6},
		},
		{
			// µs mode adds 4 to the time constant: tc 0 → 4.
			name: "micro tc 0+4", status: pll, micro: true, constant: 0, waitS: 256, offset: 4096,
			wantFreqPPM: 4096e-6 * 256 / (256 * 256) * 1e6, wantSlewS: []float64{64e-6, 63e-6, 62.015625e-6},
		},
		{
			// Linux clamps the offset to ±0.5 s; the frequency to ±500 ppm.
			name: "offset clamped", status: pll, constant: 0, waitS: 16, offset: -2000000000,
			wantFreqPPM: -500, wantSlewS: []float64{-0.125, -0.09375, -0.0703125},
		},
		{
			name: "without STA_PLL nothing happens", status: 0, constant: 0, waitS: 16, offset: 1000000,
			wantFreqPPM: 0, wantSlewS: []float64{0, 0, 0},
		},
		{
			// FLL mode after more than 2048 s: offset/(4·secs) joins the PLL term.
			name: "fll after 2048 s", status: pll, constant: 10, waitS: 4096, offset: 1000000,
			wantFreqPPM: (1e-3/(4*4096) + 1e-3*4096/math.Pow(4*4*1024, 2)) * 1e6,
			wantSlewS:   []float64{1e-3 / 4096, 1e-3 / 4096 * (1 - 1.0/4096), 1e-3 / 4096 * math.Pow(1-1.0/4096, 2)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newTestKernel(t, ClockConfig{})
			mode := uint32(unix.ADJ_NANO)
			if tt.micro {
				mode = unix.ADJ_MICRO
			}
			adjtimex(t, k, unix.Timex{Modes: mode | unix.ADJ_STATUS | unix.ADJ_TIMECONST, Status: tt.status, Constant: tt.constant})
			k.AdvanceTo(time.Duration(tt.waitS) * time.Second)
			_, tx := adjtimex(t, k, unix.Timex{Modes: unix.ADJ_OFFSET, Offset: tt.offset})
			if diff := cmp.Diff(tt.wantFreqPPM, float64(tx.Freq)/65536, approx(1e-4)); diff != "" {
				t.Errorf("freq ppm (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantFreqPPM, k.freqPPM, approx(1e-12)); diff != "" {
				t.Errorf("freq ppm (-want +got):\n%s", diff)
			}
			// The rest of this second runs at the new frequency; the PLL
			// slew starts at the next tick.
			k.AdvanceTo(k.T() + time.Second)
			var slew []float64
			for range 3 {
				before := k.Offset()
				k.AdvanceTo(k.T() + time.Second)
				slew = append(slew, k.Offset()-before-tt.wantFreqPPM*1e-6)
			}
			if diff := cmp.Diff(tt.wantSlewS, slew, approx(1e-12)); diff != "" {
				t.Errorf("phase slewed per second (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKernelPLLIntervalRestartsWithSTAPLL(t *testing.T) {
	k := newTestKernel(t, ClockConfig{})
	adjtimex(t, k, unix.Timex{Modes: unix.ADJ_NANO | unix.ADJ_STATUS | unix.ADJ_TIMECONST, Status: unix.STA_PLL})
	k.AdvanceTo(100 * time.Second)
	adjtimex(t, k, unix.Timex{Modes: unix.ADJ_STATUS}) // PLL off
	k.AdvanceTo(200 * time.Second)
	adjtimex(t, k, unix.Timex{Modes: unix.ADJ_STATUS, Status: unix.STA_PLL}) // on again: interval 0
	k.AdvanceTo(216 * time.Second)
	_, tx := adjtimex(t, k, unix.Timex{Modes: unix.ADJ_OFFSET, Offset: 1000000})
	if diff := cmp.Diff(62.5, float64(tx.Freq)/65536); diff != "" {
		t.Errorf("freq ppm after a 16 s interval (-want +got):\n%s", diff)
	}
}

func TestKernelAdjtime(t *testing.T) {
	type call struct {
		atS      float64
		modes    uint32
		offsetUS int64
		wantOld  int64 // the previous pending amount returned
	}
	tests := []struct {
		name      string
		calls     []call
		wantAtS   []float64 // offsets at whole seconds 1..5
		wantCount int64
	}{
		{
			name:      "slewed at 500 µs/s",
			calls:     []call{{0.5, unix.ADJ_OFFSET_SINGLESHOT, 1200, 0}},
			wantAtS:   []float64{0, 500e-6, 1000e-6, 1200e-6, 1200e-6},
			wantCount: 1,
		},
		{
			name:      "negative",
			calls:     []call{{0, unix.ADJ_OFFSET_SINGLESHOT, -700, 0}},
			wantAtS:   []float64{0, -500e-6, -700e-6, -700e-6, -700e-6},
			wantCount: 1,
		},
		{
			name: "replaced, not added",
			calls: []call{
				{0, unix.ADJ_OFFSET_SINGLESHOT, 1200, 0},
				{1.5, unix.ADJ_OFFSET_SINGLESHOT, 100, 700},
			},
			wantAtS:   []float64{0, 500e-6, 600e-6, 600e-6, 600e-6},
			wantCount: 2,
		},
		{
			name: "read-only query changes nothing",
			calls: []call{
				{0, unix.ADJ_OFFSET_SINGLESHOT, 1200, 0},
				{1.5, unix.ADJ_OFFSET_SS_READ, 100, 700},
			},
			wantAtS:   []float64{0, 500e-6, 1000e-6, 1200e-6, 1200e-6},
			wantCount: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newTestKernel(t, ClockConfig{})
			calls := tt.calls
			var got []float64
			for s := 1; s <= 5; s++ {
				for len(calls) > 0 && sec(calls[0].atS) < time.Duration(s)*time.Second {
					c := calls[0]
					calls = calls[1:]
					k.AdvanceTo(sec(c.atS))
					_, tx := adjtimex(t, k, unix.Timex{Modes: c.modes, Offset: c.offsetUS})
					if tx.Offset != c.wantOld {
						t.Errorf("at %g s: returned pending %d µs, want %d", c.atS, tx.Offset, c.wantOld)
					}
				}
				k.AdvanceTo(time.Duration(s) * time.Second)
				got = append(got, k.Offset())
				if math.Abs(k.FreqErrorPPB()) > 500e3 {
					t.Errorf("at %d s: slewing at %g ppb, above 500 ppm", s, k.FreqErrorPPB())
				}
			}
			if diff := cmp.Diff(tt.wantAtS, got, approx(1e-15)); diff != "" {
				t.Errorf("offsets at 1..5 s (-want +got):\n%s", diff)
			}
			if k.Adjustments() != tt.wantCount {
				t.Errorf("%d adjustments, want %d", k.Adjustments(), tt.wantCount)
			}
		})
	}
}

func TestKernelSetOffset(t *testing.T) {
	tests := []struct {
		name    string
		modes   uint32
		time    unix.Timeval
		wantErr error
		wantNS  int64
	}{
		{"nano forward", unix.ADJ_SETOFFSET | unix.ADJ_NANO, unix.Timeval{Sec: 1, Usec: 500000000}, nil, 1500000000},
		{"nano back", unix.ADJ_SETOFFSET | unix.ADJ_NANO, unix.Timeval{Sec: -1, Usec: 999999999}, nil, -1},
		{"micro", unix.ADJ_SETOFFSET, unix.Timeval{Sec: -3, Usec: 250000}, nil, -2750000000},
		{"micro usec too large", unix.ADJ_SETOFFSET, unix.Timeval{Usec: 1000000}, unix.EINVAL, 0},
		{"negative usec", unix.ADJ_SETOFFSET | unix.ADJ_NANO, unix.Timeval{Usec: -1}, unix.EINVAL, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newTestKernel(t, ClockConfig{InitialOffset: 100 * time.Millisecond})
			synced(t, k)
			k.AdvanceTo(sec(2.25))
			rt0, mono0 := k.Now()
			tx := unix.Timex{Modes: tt.modes, Time: tt.time}
			state, err := k.Adjtimex(&tx)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			rt1, mono1 := k.Now()
			if diff := cmp.Diff(time.Duration(tt.wantNS), rt1.Sub(rt0)); diff != "" {
				t.Errorf("realtime step (-want +got):\n%s", diff)
			}
			if mono1 != mono0 {
				t.Errorf("monotonic stepped by %v", mono1-mono0)
			}
			if err != nil {
				return
			}
			if tx.Maxerror != 16000000 || state != unix.TIME_OK {
				t.Errorf("after a step: maxerror %d, state %d; want 16000000, TIME_OK", tx.Maxerror, state)
			}
			k.AdvanceTo(sec(3))
			if state, _ := adjtimex(t, k, unix.Timex{}); state != unix.TIME_ERROR {
				t.Errorf("state one second after a step: %d, want TIME_ERROR", state)
			}
		})
	}
}

func TestKernelMaxErrorGrowth(t *testing.T) {
	k := newTestKernel(t, ClockConfig{})
	adjtimex(t, k, unix.Timex{Modes: unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR, Maxerror: 1000, Esterror: 20000000})
	type view struct {
		State          int
		MaxErr, EstErr int64
		Unsync         bool
	}
	tests := []struct {
		atS  int
		want view
	}{
		{0, view{unix.TIME_OK, 1000, 16000000, false}},
		{1, view{unix.TIME_OK, 1500, 16000000, false}},
		{100, view{unix.TIME_OK, 51000, 16000000, false}},
		{31997, view{unix.TIME_OK, 15999500, 16000000, false}},
		{31998, view{unix.TIME_ERROR, 16000000, 16000000, true}},
		{40000, view{unix.TIME_ERROR, 16000000, 16000000, true}},
	}
	for _, tt := range tests {
		k.AdvanceTo(time.Duration(tt.atS) * time.Second)
		state, tx := adjtimex(t, k, unix.Timex{})
		got := view{state, tx.Maxerror, tx.Esterror, tx.Status&unix.STA_UNSYNC != 0}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("at %d s (-want +got):\n%s", tt.atS, diff)
		}
	}
}

func TestKernelModes(t *testing.T) {
	tests := []struct {
		name  string
		modes uint32
		tx    unix.Timex
		check func(unix.Timex) []int64
		want  []int64
	}{
		{"time constant clamped high", unix.ADJ_NANO | unix.ADJ_TIMECONST, unix.Timex{Constant: 12},
			func(tx unix.Timex) []int64 { return []int64{tx.Constant} }, []int64{10}},
		{"time constant clamped low", unix.ADJ_NANO | unix.ADJ_TIMECONST, unix.Timex{Constant: -3},
			func(tx unix.Timex) []int64 { return []int64{tx.Constant} }, []int64{0}},
		{"time constant +4 in µs mode", unix.ADJ_TIMECONST, unix.Timex{Constant: 3},
			func(tx unix.Timex) []int64 { return []int64{tx.Constant} }, []int64{7}},
		{"maxerror and esterror clamped", unix.ADJ_MAXERROR | unix.ADJ_ESTERROR, unix.Timex{Maxerror: -5, Esterror: 17000000},
			func(tx unix.Timex) []int64 { return []int64{tx.Maxerror, tx.Esterror} }, []int64{0, 16000000}},
		{"status ignores read-only bits", unix.ADJ_NANO | unix.ADJ_STATUS, unix.Timex{Status: unix.STA_PLL | unix.STA_CLK | unix.STA_MODE},
			func(tx unix.Timex) []int64 { return []int64{int64(tx.Status)} }, []int64{unix.STA_PLL | unix.STA_NANO}},
		{"micro wins over nano", unix.ADJ_NANO | unix.ADJ_MICRO, unix.Timex{},
			func(tx unix.Timex) []int64 { return []int64{int64(tx.Status & unix.STA_NANO)} }, []int64{0}},
		{"tai", unix.ADJ_TAI, unix.Timex{Constant: 37},
			func(tx unix.Timex) []int64 { return []int64{int64(tx.Tai)} }, []int64{37}},
		{"nano time readout", unix.ADJ_NANO, unix.Timex{},
			func(tx unix.Timex) []int64 { return []int64{tx.Time.Sec, tx.Time.Usec} }, []int64{DefaultEpochUnix + 1, 250000001}},
		{"micro time readout", unix.ADJ_MICRO, unix.Timex{},
			func(tx unix.Timex) []int64 { return []int64{tx.Time.Sec, tx.Time.Usec} }, []int64{DefaultEpochUnix + 1, 250000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newTestKernel(t, ClockConfig{InitialOffset: 1})
			k.AdvanceTo(sec(1.25))
			tx := tt.tx
			tx.Modes = tt.modes
			adjtimex(t, k, tx)
			_, tx = adjtimex(t, k, unix.Timex{})
			if diff := cmp.Diff(tt.want, tt.check(tx)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestKernelAdjustmentCount(t *testing.T) {
	k := newTestKernel(t, ClockConfig{})
	for _, modes := range []uint32{0, unix.ADJ_FREQUENCY, 0, unix.ADJ_OFFSET_SS_READ, unix.ADJ_STATUS, unix.ADJ_OFFSET_SINGLESHOT} {
		adjtimex(t, k, unix.Timex{Modes: modes})
	}
	tx := unix.Timex{Modes: unix.ADJ_TICK, Tick: 1}
	if _, err := k.Adjtimex(&tx); err == nil {
		t.Fatal("tick 1 accepted")
	}
	if got := k.Adjustments(); got != 3 {
		t.Errorf("%d adjustments, want 3", got)
	}
}

// reading is what the engine sees at one instant.
type reading struct {
	Realtime string
	State    int
}

func TestKernelLeapSecond(t *testing.T) {
	const layout = "15:04:05.000"
	tests := []struct {
		name   string
		epoch  time.Time // true time at T = 0
		offset time.Duration
		status int32
		at     []float64 // true times, s
		want   []reading
		tai    int32
	}{
		{
			name:   "insert",
			epoch:  time.Date(2025, 6, 30, 23, 59, 50, 0, time.UTC),
			status: unix.STA_INS,
			at:     []float64{0.5, 1, 9.5, 9.75, 10, 10.25, 10.75, 11, 11.5, 12},
			want: []reading{
				{"23:59:50.500", unix.TIME_OK}, {"23:59:51.000", unix.TIME_INS},
				{"23:59:59.500", unix.TIME_INS}, {"23:59:59.750", unix.TIME_INS},
				{"23:59:59.000", unix.TIME_OOP}, {"23:59:59.250", unix.TIME_OOP}, {"23:59:59.750", unix.TIME_OOP},
				{"00:00:00.000", unix.TIME_WAIT}, {"00:00:00.500", unix.TIME_WAIT}, {"00:00:01.000", unix.TIME_WAIT},
			},
			tai: 1,
		},
		{
			// The second is inserted when the clock, not true time, reaches
			// midnight: 0.3 s ahead, at T = 9.7 s.
			name:   "insert on a clock ahead",
			epoch:  time.Date(2025, 6, 30, 23, 59, 50, 0, time.UTC),
			offset: 300 * time.Millisecond,
			status: unix.STA_INS,
			at:     []float64{9.65, 9.7, 10, 10.65, 10.7},
			want: []reading{
				{"23:59:59.950", unix.TIME_INS}, {"23:59:59.000", unix.TIME_OOP}, {"23:59:59.300", unix.TIME_OOP},
				{"23:59:59.950", unix.TIME_OOP}, {"00:00:00.000", unix.TIME_WAIT},
			},
			tai: 1,
		},
		{
			name:   "delete",
			epoch:  time.Date(2025, 12, 31, 23, 59, 50, 0, time.UTC),
			status: unix.STA_DEL,
			at:     []float64{1, 8.5, 8.75, 9, 9.5, 10},
			want: []reading{
				{"23:59:51.000", unix.TIME_DEL}, {"23:59:58.500", unix.TIME_DEL}, {"23:59:58.750", unix.TIME_DEL},
				{"00:00:00.000", unix.TIME_WAIT}, {"00:00:00.500", unix.TIME_WAIT}, {"00:00:01.000", unix.TIME_WAIT},
			},
			tai: -1,
		},
		{
			name:   "not armed",
			epoch:  time.Date(2025, 6, 30, 23, 59, 50, 0, time.UTC),
			status: 0,
			at:     []float64{9.75, 10, 10.25},
			want:   []reading{{"23:59:59.750", unix.TIME_OK}, {"00:00:00.000", unix.TIME_OK}, {"00:00:00.250", unix.TIME_OK}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newTestKernel(t, ClockConfig{Epoch: tt.epoch, InitialOffset: tt.offset})
			adjtimex(t, k, unix.Timex{Modes: unix.ADJ_STATUS | unix.ADJ_MAXERROR, Status: tt.status})
			var got []reading
			var lastMono time.Duration
			for _, s := range tt.at {
				k.AdvanceTo(sec(s))
				state, _ := adjtimex(t, k, unix.Timex{})
				rt, mono := k.Now()
				got = append(got, reading{rt.Format(layout), state})
				if mono < lastMono {
					t.Errorf("monotonic went back at %g s", s)
				}
				lastMono = mono
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if k.tai != tt.tai {
				t.Errorf("TAI offset %d, want %d", k.tai, tt.tai)
			}
		})
	}
}

func TestKernelLeapStateReturnsToOK(t *testing.T) {
	k := newTestKernel(t, ClockConfig{Epoch: time.Date(2025, 6, 30, 23, 59, 50, 0, time.UTC)})
	adjtimex(t, k, unix.Timex{Modes: unix.ADJ_STATUS | unix.ADJ_MAXERROR, Status: unix.STA_INS})
	k.AdvanceTo(sec(12.5))
	adjtimex(t, k, unix.Timex{Modes: unix.ADJ_STATUS}) // the daemon clears STA_INS
	k.AdvanceTo(sec(12.9))
	if state, _ := adjtimex(t, k, unix.Timex{}); state != unix.TIME_WAIT {
		t.Errorf("state before the tick %d, want TIME_WAIT", state)
	}
	k.AdvanceTo(13 * time.Second)
	if state, _ := adjtimex(t, k, unix.Timex{}); state != unix.TIME_OK {
		t.Errorf("state after the tick %d, want TIME_OK", state)
	}
	// Only one second was inserted.
	rt, _ := k.Now()
	if want := time.Date(2025, 7, 1, 0, 0, 2, 0, time.UTC); !rt.Equal(want) {
		t.Errorf("realtime %v, want %v", rt, want)
	}
}

func TestKernelMonotonic(t *testing.T) {
	k := newTestKernel(t, ClockConfig{F0: 1e-4, InitialOffset: 5 * time.Second, MonotonicStart: 1000 * time.Second})
	synced(t, k)
	var last time.Duration
	for i := 1; i <= 2000; i++ {
		k.AdvanceTo(sec(float64(i) * 0.5))
		switch i {
		case 100:
			adjtimex(t, k, unix.Timex{Modes: unix.ADJ_SETOFFSET, Time: unix.Timeval{Sec: -10}})
		case 200:
			adjtimex(t, k, unix.Timex{Modes: unix.ADJ_FREQUENCY, Freq: -100 << 16})
		case 300:
			adjtimex(t, k, unix.Timex{Modes: unix.ADJ_OFFSET_SINGLESHOT, Offset: -5000})
		}
		_, mono := k.Now()
		if mono <= last {
			t.Fatalf("at %v: monotonic %v after %v", k.T(), mono, last)
		}
		last = mono
	}
	// 100 s at +100 ppm, then 900 s at (1+1e-4)(1−1e-4) = 1 − 1e-8, and the
	// 5 ms adjtime slewed out; the step at 50 s does not count.
	want := 1000*time.Second + 1000*time.Second + 10*time.Millisecond - 5*time.Millisecond - 9*time.Microsecond
	if d := last - want; d < -time.Microsecond || d > time.Microsecond {
		t.Errorf("monotonic %v, want %v ± 1 µs", last, want)
	}
}

func TestKernelNowExact(t *testing.T) {
	epoch := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	k := newTestKernel(t, ClockConfig{Epoch: epoch, InitialOffset: 123456789, MonotonicStart: 42})
	k.AdvanceTo(sec(1.5) + 1)
	rt, mono := k.Now()
	if want := epoch.Add(sec(1.5) + 1 + 123456789); !rt.Equal(want) {
		t.Errorf("realtime %v, want %v", rt, want)
	}
	if want := sec(1.5) + 1 + 42; mono != want {
		t.Errorf("monotonic %v, want %v", mono, want)
	}
	if rt.Location() != time.UTC {
		t.Errorf("realtime in %v, want UTC", rt.Location())
	}
}

func TestKernelConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  ClockConfig
		gen  *Gen
	}{
		{"huge frequency error", ClockConfig{F0: 0.3}, nil},
		{"NaN frequency error", ClockConfig{F0: math.NaN()}, nil},
		{"negative wander", ClockConfig{Wander: -1}, NewGen(1)},
		{"wander without generator", ClockConfig{Wander: 1e-9}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewKernel(tt.cfg, tt.gen); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("err %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestKernelAdvanceBackwardsPanics(t *testing.T) {
	k := newTestKernel(t, ClockConfig{})
	k.AdvanceTo(time.Second)
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	k.AdvanceTo(time.Second - 1)
}
