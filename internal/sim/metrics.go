package sim

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Default metrics window (SIMULATION.md: RMS and max over 2000–50000 s).
const (
	DefaultWindowStart = 2000 * time.Second
	DefaultWindowEnd   = 50000 * time.Second
)

// syncThresholdS is the |offset| below which the clock counts as
// synchronised for the first-below and settle times.
const syncThresholdS = 1e-3

// The clock counts as settled for MaxAbsOffsetSettledS from the first
// time |offset| < SettledBand after which it stays within ±1 ms for
// SettledStretch: the start-up's convergence is over.
const (
	SettledBand    = 100e-6
	SettledStretch = 1000 * time.Second
)

// RecorderConfig sets what a Recorder summarises.
type RecorderConfig struct {
	// WindowStart and WindowEnd bound the steady-state window of the RMS
	// and windowed maxima, inclusive. Defaults (0) DefaultWindowStart and
	// DefaultWindowEnd. A run that ends inside the window uses what it
	// has; a run that ends before WindowStart uses the whole run instead.
	WindowStart, WindowEnd time.Duration
	// Sources is the number of servers the polls are spread over, for the
	// mean poll interval per source. Default (0) 1.
	Sources int
}

// Sample is the state of the client once per simulated second.
type Sample struct {
	// T is the true time of the sample.
	T time.Duration
	// OffsetS is the clock's offset, clock − true time, in seconds.
	OffsetS float64
	// FreqErrorPPB is the clock's residual frequency error, total rate − 1,
	// in ppb.
	FreqErrorPPB float64
	// Polls is the number of requests sent so far (cumulative).
	Polls int64
	// Adjustments is the number of adjtimex calls that changed something so
	// far (cumulative).
	Adjustments int64
	// EstimateS and SigmaS are the engine's estimate of OffsetS and its
	// standard deviation, when HaveEstimate.
	EstimateS, SigmaS float64
	HaveEstimate      bool
}

// Metrics are the benchmark figures of one run (SIMULATION.md, "Scenario
// file and metrics").
type Metrics struct {
	// FirstBelow1msS is the first sample time with |offset| < 1 ms, in
	// seconds; nil if never.
	FirstBelow1msS *float64 `json:"first_below_1ms_s"`
	// Settle1msS is the earliest time after which |offset| stays < 1 ms to
	// the end of the run, in seconds; nil if the last sample is not below.
	Settle1msS *float64 `json:"settle_1ms_s"`
	// MaxAbsOffsetS is the largest |offset| of the whole run, in seconds.
	MaxAbsOffsetS float64 `json:"max_abs_offset_s"`
	// RMSOffsetS is the RMS offset over the window, in seconds.
	RMSOffsetS float64 `json:"rms_offset_s"`
	// MaxAbsOffsetWindowS is the largest |offset| in the window, in seconds.
	MaxAbsOffsetWindowS float64 `json:"max_abs_offset_window_s"`
	// RMSFreqErrorPPB is the RMS residual frequency error over the window,
	// in ppb.
	RMSFreqErrorPPB float64 `json:"rms_freq_error_ppb"`
	// MeanPollS is the mean interval between requests to one source over
	// the window, in seconds: window length · sources / requests; 0
	// without requests.
	MeanPollS float64 `json:"mean_poll_s"`
	// ClockAdjustmentsPerPoll is adjtimex calls that changed something per
	// request sent, over the window; 0 without requests.
	ClockAdjustmentsPerPoll float64 `json:"clock_adjustments_per_poll"`
	// MaxAbsOffsetSettledS is the largest |offset| after settling, in
	// seconds: from the first time |offset| < SettledBand that begins a
	// stretch of SettledStretch within ±1 ms, to the end of the run (the
	// start-up and its convergence excluded, every later excursion
	// included); 0 if the clock never settled so.
	MaxAbsOffsetSettledS float64 `json:"max_abs_offset_settled_s"`
	// MeanPollRunS is the mean interval between requests to a server over
	// the whole run, as chrony's figures define it: (last − first
	// request)/(requests − 1), in seconds.
	MeanPollRunS float64 `json:"mean_poll_run_s"`
	// Within3SigmaFraction is the fraction of the window's samples with an
	// engine estimate whose |estimate − offset| is at most 3 of its
	// standard deviations (honest error bars: ≥ 0.99), and RMSSigmaS the
	// RMS of those standard deviations (s); both 0 without estimates.
	Within3SigmaFraction float64 `json:"within_3_sigma_fraction"`
	RMSSigmaS            float64 `json:"rms_sigma_s"`
}

// String formats the metrics as text, one per line; "never" stands for a
// nil time.
func (m Metrics) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "first |offset| < 1 ms:   %s\n", formatSeconds(m.FirstBelow1msS))
	fmt.Fprintf(&b, "settle < 1 ms:           %s\n", formatSeconds(m.Settle1msS))
	fmt.Fprintf(&b, "max |offset|:            %.9f s\n", m.MaxAbsOffsetS)
	fmt.Fprintf(&b, "RMS offset (window):     %.9f s\n", m.RMSOffsetS)
	fmt.Fprintf(&b, "max |offset| (window):   %.9f s\n", m.MaxAbsOffsetWindowS)
	fmt.Fprintf(&b, "RMS freq error (window): %.3f ppb\n", m.RMSFreqErrorPPB)
	fmt.Fprintf(&b, "mean poll (window):      %.1f s\n", m.MeanPollS)
	fmt.Fprintf(&b, "clock adjustments/poll:  %.3f\n", m.ClockAdjustmentsPerPoll)
	fmt.Fprintf(&b, "max |offset| settled:    %.9f s\n", m.MaxAbsOffsetSettledS)
	fmt.Fprintf(&b, "mean poll (whole run):   %.1f s\n", m.MeanPollRunS)
	fmt.Fprintf(&b, "within 3σ (window):      %.4f\n", m.Within3SigmaFraction)
	fmt.Fprintf(&b, "RMS σ (window):          %.9f s\n", m.RMSSigmaS)
	return b.String()
}

func formatSeconds(s *float64) string {
	if s == nil {
		return "never"
	}
	return fmt.Sprintf("%g s", *s)
}

// Recorder accumulates samples into Metrics in constant memory.
type Recorder struct {
	cfg RecorderConfig

	firstBelow, settle time.Duration // settle: start of the current run of good samples
	below, settled     bool
	maxAbs             float64
	candidate          bool          // a settling candidate in the current run below 1 ms
	candidateT         time.Duration // its start: a sample below SettledBand
	candidateMax       float64       // the largest |offset| since
	sustained          bool          // a candidate lasted SettledStretch
	maxAbsSettled      float64       // since the start of that candidate

	all, win window
}

// window accumulates the windowed figures over a span of samples.
type window struct {
	n                int
	first, last      Sample
	sumSq, sumFreqSq float64
	maxAbs           float64
	// Samples with an estimate, those within 3σ, and Σσ².
	nEst, nWithin int
	sumSigmaSq    float64
}

func (w *window) add(s Sample) {
	if w.n == 0 {
		w.first = s
	}
	w.n++
	w.last = s
	w.sumSq += float64(s.OffsetS * s.OffsetS) // unfused on every platform
	w.sumFreqSq += float64(s.FreqErrorPPB * s.FreqErrorPPB)
	w.maxAbs = max(w.maxAbs, math.Abs(s.OffsetS))
	if s.HaveEstimate {
		w.nEst++
		w.sumSigmaSq += s.SigmaS * s.SigmaS
		if math.Abs(s.EstimateS-s.OffsetS) <= 3*s.SigmaS {
			w.nWithin++
		}
	}
}

// NewRecorder returns an empty recorder.
func NewRecorder(cfg RecorderConfig) *Recorder {
	if cfg.WindowStart == 0 {
		cfg.WindowStart = DefaultWindowStart
	}
	if cfg.WindowEnd == 0 {
		cfg.WindowEnd = DefaultWindowEnd
	}
	if cfg.Sources <= 0 {
		cfg.Sources = 1
	}
	return &Recorder{cfg: cfg}
}

// Add records a sample; samples come in time order, once per second.
func (r *Recorder) Add(s Sample) {
	abs := math.Abs(s.OffsetS)
	r.maxAbs = max(r.maxAbs, abs)
	if abs < syncThresholdS {
		if !r.below {
			r.firstBelow, r.below = s.T, true
		}
		if !r.settled {
			r.settle, r.settled = s.T, true
		}
		if !r.candidate && abs < SettledBand {
			r.candidate, r.candidateT, r.candidateMax = true, s.T, 0
		}
		r.candidateMax = max(r.candidateMax, abs)
		if r.candidate && !r.sustained && s.T-r.candidateT >= SettledStretch {
			r.sustained, r.maxAbsSettled = true, r.candidateMax
		}
	} else {
		r.settled, r.candidate = false, false
	}
	if r.sustained {
		r.maxAbsSettled = max(r.maxAbsSettled, abs)
	}
	r.all.add(s)
	if s.T >= r.cfg.WindowStart && s.T <= r.cfg.WindowEnd {
		r.win.add(s)
	}
}

// Metrics summarises the samples so far.
func (r *Recorder) Metrics() Metrics {
	m := Metrics{
		FirstBelow1msS:       seconds(r.firstBelow, r.below),
		Settle1msS:           seconds(r.settle, r.settled),
		MaxAbsOffsetS:        r.maxAbs,
		MaxAbsOffsetSettledS: r.maxAbsSettled,
	}
	w := r.win
	if w.n == 0 {
		w = r.all
	}
	if w.n == 0 {
		return m
	}
	m.RMSOffsetS = math.Sqrt(w.sumSq / float64(w.n))
	m.MaxAbsOffsetWindowS = w.maxAbs
	m.RMSFreqErrorPPB = math.Sqrt(w.sumFreqSq / float64(w.n))
	if w.nEst > 0 {
		m.Within3SigmaFraction = float64(w.nWithin) / float64(w.nEst)
		m.RMSSigmaS = math.Sqrt(w.sumSigmaSq / float64(w.nEst))
	}
	if polls := w.last.Polls - w.first.Polls; polls > 0 {
		span := (w.last.T - w.first.T).Seconds()
		m.MeanPollS = span * float64(r.cfg.Sources) / float64(polls)
		m.ClockAdjustmentsPerPoll = float64(w.last.Adjustments-w.first.Adjustments) / float64(polls)
	}
	return m
}

func seconds(t time.Duration, ok bool) *float64 {
	if !ok {
		return nil
	}
	s := t.Seconds()
	return &s
}
