package sim

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func ptr(x float64) *float64 { return &x }

// series feeds offsets (one per second from t = 0) into a recorder; poll
// and adjust, when set, say which seconds saw a poll or a clock
// adjustment, and freqPPB the frequency error of each second.
func series(cfg RecorderConfig, offsetsS []float64, freqPPB func(int) float64, poll, adjust func(int) bool) Metrics {
	r := NewRecorder(cfg)
	var polls, adjustments int64
	for i, off := range offsetsS {
		if poll != nil && poll(i) {
			polls++
		}
		if adjust != nil && adjust(i) {
			adjustments++
		}
		f := 0.0
		if freqPPB != nil {
			f = freqPPB(i)
		}
		r.Add(Sample{T: time.Duration(i) * time.Second, OffsetS: off, FreqErrorPPB: f, Polls: polls, Adjustments: adjustments})
	}
	return r.Metrics()
}

func constant(n int, v float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func TestMetrics(t *testing.T) {
	small := RecorderConfig{WindowStart: 10 * time.Second, WindowEnd: 20 * time.Second}
	tests := []struct {
		name    string
		cfg     RecorderConfig
		offsets []float64
		freq    func(int) float64
		poll    func(int) bool
		adjust  func(int) bool
		want    Metrics
	}{
		{
			name:    "always synchronised",
			cfg:     small,
			offsets: constant(30, 1e-4),
			want: Metrics{FirstBelow1msS: ptr(0), Settle1msS: ptr(0), MaxAbsOffsetS: 1e-4,
				RMSOffsetS: 1e-4, MaxAbsOffsetWindowS: 1e-4},
		},
		{
			name:    "converges",
			cfg:     small,
			offsets: []float64{0.1, 0.01, -0.002, 0.0009, -0.0005, 0.0002, 0.0001},
			want: Metrics{FirstBelow1msS: ptr(3), Settle1msS: ptr(3), MaxAbsOffsetS: 0.1,
				// Ends before the window: the whole run.
				RMSOffsetS:          math.Sqrt((0.01 + 1e-4 + 4e-6 + 8.1e-7 + 2.5e-7 + 4e-8 + 1e-8) / 7),
				MaxAbsOffsetWindowS: 0.1},
		},
		{
			name:    "dips below, leaves, settles later",
			cfg:     small,
			offsets: append([]float64{0.1, 0.0005, 0.002, -0.0011, 0.0009}, constant(20, -1e-5)...),
			want: Metrics{FirstBelow1msS: ptr(1), Settle1msS: ptr(4), MaxAbsOffsetS: 0.1,
				RMSOffsetS: 1e-5, MaxAbsOffsetWindowS: 1e-5},
		},
		{
			name:    "ends above",
			cfg:     small,
			offsets: append(constant(25, 0), 0.001),
			want: Metrics{FirstBelow1msS: ptr(0), Settle1msS: nil, MaxAbsOffsetS: 0.001,
				RMSOffsetS: 0, MaxAbsOffsetWindowS: 0},
		},
		{
			name:    "never",
			cfg:     small,
			offsets: constant(30, -0.5),
			want: Metrics{FirstBelow1msS: nil, Settle1msS: nil, MaxAbsOffsetS: 0.5,
				RMSOffsetS: 0.5, MaxAbsOffsetWindowS: 0.5},
		},
		{
			// Spikes outside [10, 20] count only in the whole-run maximum.
			name: "window",
			cfg:  small,
			offsets: func() []float64 {
				s := constant(40, 0.003)
				for i := 10; i <= 20; i++ {
					s[i] = []float64{2e-4, -2e-4}[i%2]
				}
				s[5], s[30] = 0.2, -0.3
				return s
			}(),
			freq: func(i int) float64 { return []float64{30, -30}[i%2] + float64(i) },
			want: Metrics{FirstBelow1msS: ptr(10), Settle1msS: nil, MaxAbsOffsetS: 0.3,
				RMSOffsetS: 2e-4, MaxAbsOffsetWindowS: 2e-4,
				RMSFreqErrorPPB: math.Sqrt(func() float64 {
					var s float64
					for i := 10; i <= 20; i++ {
						f := []float64{30, -30}[i%2] + float64(i)
						s += f * f
					}
					return s / 11
				}())},
		},
		{
			// Over 2000..50000 s: a poll every 64 s, two adjustments per poll.
			name:    "polls",
			offsets: constant(50001, 0),
			poll:    func(i int) bool { return i%64 == 0 },
			adjust:  func(i int) bool { return i%32 == 0 },
			want: Metrics{FirstBelow1msS: ptr(0), Settle1msS: ptr(0),
				MeanPollS: 48000.0 / 750, ClockAdjustmentsPerPoll: 2},
		},
		{
			name:    "two sources",
			cfg:     RecorderConfig{Sources: 2},
			offsets: constant(50001, 0),
			poll:    func(i int) bool { return i%32 == 0 },
			adjust:  func(i int) bool { return i%32 == 0 },
			want: Metrics{FirstBelow1msS: ptr(0), Settle1msS: ptr(0),
				MeanPollS: 64, ClockAdjustmentsPerPoll: 1},
		},
		{
			// Settled from t = 6 (below 100 µs, then 1000 s within ±1 ms):
			// the convergence before is left out, the excursion counts.
			name: "excursion after settling",
			cfg:  small,
			offsets: func() []float64 {
				s := append([]float64{0.1, 0.0005, 0.002, 0.003, 0.0009, 0.0003}, constant(1500, 5e-5)...)
				s[1200] = -0.004
				s[1300] = 0.0008
				return s
			}(),
			want: Metrics{FirstBelow1msS: ptr(1), Settle1msS: ptr(1201), MaxAbsOffsetS: 0.1,
				RMSOffsetS: 5e-5, MaxAbsOffsetWindowS: 5e-5, MaxAbsOffsetSettledS: 0.004},
		},
		{
			name: "empty",
			want: Metrics{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := series(tt.cfg, tt.offsets, tt.freq, tt.poll, tt.adjust)
			if diff := cmp.Diff(tt.want, got, approx(1e-12)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// The honesty figures count the window's samples whose estimate is within
// 3σ of the offset, and the RMS of σ; samples without an estimate do not
// count.
func TestMetricsHonesty(t *testing.T) {
	r := NewRecorder(RecorderConfig{WindowStart: time.Second, WindowEnd: 10 * time.Second})
	for i := range 11 {
		smp := Sample{T: time.Duration(i) * time.Second, OffsetS: 1e-4}
		switch {
		case i == 0: // before the window
			smp.EstimateS, smp.SigmaS, smp.HaveEstimate = 1, 1e-6, true
		case i < 3: // no estimate yet
		case i == 3: // 4σ off
			smp.EstimateS, smp.SigmaS, smp.HaveEstimate = 1e-4+4e-6, 1e-6, true
		default: // 2σ off
			smp.EstimateS, smp.SigmaS, smp.HaveEstimate = 1e-4-2e-6, 1e-6, true
		}
		r.Add(smp)
	}
	m := r.Metrics()
	if m.Within3SigmaFraction != 7.0/8 || math.Abs(m.RMSSigmaS-1e-6) > 1e-18 {
		t.Errorf("within 3σ %v, RMS σ %g; want 7/8, 1e-6", m.Within3SigmaFraction, m.RMSSigmaS)
	}
}

func TestMetricsJSON(t *testing.T) {
	tests := []struct {
		m    Metrics
		want string
	}{
		{
			Metrics{FirstBelow1msS: ptr(131), Settle1msS: ptr(131), MaxAbsOffsetS: 0.1, RMSOffsetS: 1.04e-4,
				MaxAbsOffsetWindowS: 3.13e-4, RMSFreqErrorPPB: 2.5, MeanPollS: 512, ClockAdjustmentsPerPoll: 1},
			`{"first_below_1ms_s":131,"settle_1ms_s":131,"max_abs_offset_s":0.1,"rms_offset_s":0.000104,` +
				`"max_abs_offset_window_s":0.000313,"rms_freq_error_ppb":2.5,"mean_poll_s":512,"clock_adjustments_per_poll":1,` +
				`"max_abs_offset_settled_s":0,"mean_poll_run_s":0,"within_3_sigma_fraction":0,"rms_sigma_s":0}`,
		},
		{
			Metrics{},
			`{"first_below_1ms_s":null,"settle_1ms_s":null,"max_abs_offset_s":0,"rms_offset_s":0,` +
				`"max_abs_offset_window_s":0,"rms_freq_error_ppb":0,"mean_poll_s":0,"clock_adjustments_per_poll":0,` +
				`"max_abs_offset_settled_s":0,"mean_poll_run_s":0,"within_3_sigma_fraction":0,"rms_sigma_s":0}`,
		},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.m)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, string(b)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}
}

func TestMetricsString(t *testing.T) {
	s := Metrics{Settle1msS: ptr(6)}.String()
	for _, want := range []string{"first |offset| < 1 ms:   never\n", "settle < 1 ms:           6 s\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("%q does not contain %q", s, want)
		}
	}
}

// TestSimMetrics runs a clock nobody disciplines: the offset grows at the
// raw frequency error, and the frequency error is f0.
func TestSimMetrics(t *testing.T) {
	s := newTestSim(t, Config{Clock: ClockConfig{F0: 1e-6, InitialOffset: -2000500 * time.Nanosecond}})
	s.RunUntil(3000 * time.Second)
	m := s.Metrics()
	var sumSq float64
	for i := 2000; i <= 3000; i++ {
		off := -2.0005e-3 + 1e-6*float64(i)
		sumSq += off * off
	}
	want := Metrics{
		FirstBelow1msS:       ptr(1001),
		Settle1msS:           ptr(1001),
		MaxAbsOffsetS:        2.0005e-3,
		RMSOffsetS:           math.Sqrt(sumSq / 1001),
		MaxAbsOffsetWindowS:  0.9995e-3,
		RMSFreqErrorPPB:      1000,
		MaxAbsOffsetSettledS: 0.9995e-3,
	}
	// 1 + 1e-6 is not exact in binary: allow for its rounding.
	if diff := cmp.Diff(want, m, cmpopts.EquateApprox(1e-9, 1e-12)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
