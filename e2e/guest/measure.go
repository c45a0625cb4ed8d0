package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"time"

	"github.com/ntptool/ntptool/e2e/report"
)

// burstSize is how many exchanges each independent measurement makes; the
// one with the lowest delay is kept (ntptool query --samples).
const burstSize = 5

// sample is one independent measurement of the guest clock against the
// host's server: Offset is host - guest (positive: the guest is behind),
// at guest monotonic time T.
type sample struct {
	T, Offset, Delay float64
}

// queryJSON is the part of `ntptool query --json` the guest reads.
type queryJSON struct {
	Servers []struct {
		Valid         bool     `json:"valid"`
		Verdict       string   `json:"verdict"`
		Error         string   `json:"error"`
		OffsetSeconds *float64 `json:"offset_seconds"`
		DelaySeconds  *float64 `json:"delay_seconds"`
	} `json:"servers"`
}

// query measures the offset with one `ntptool query --json` process (the
// product's own client, independent of the daemon under test).
func (s *g) query() (sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server := hostAddr + ":" + strconv.Itoa(s.spec.ServerPort)
	t0 := mono()
	s.queryTimes = append(s.queryTimes, t0)
	out, err := exec.CommandContext(ctx, ntptoolBin, "query", "--json", "--samples", strconv.Itoa(burstSize), "--timeout", "1s", server).Output()
	t1 := mono()
	if err != nil && len(out) == 0 {
		return sample{}, fmt.Errorf("ntptool query %s: %w", server, err)
	}
	return parseQuery(out, (t0+t1)/2)
}

func parseQuery(out []byte, t float64) (sample, error) {
	var q queryJSON
	if err := json.Unmarshal(out, &q); err != nil {
		return sample{}, fmt.Errorf("ntptool query output: %w", err)
	}
	if len(q.Servers) != 1 {
		return sample{}, fmt.Errorf("ntptool query: %d servers in the output, want 1", len(q.Servers))
	}
	r := q.Servers[0]
	if !r.Valid || r.OffsetSeconds == nil || r.DelaySeconds == nil {
		return sample{}, fmt.Errorf("ntptool query: no valid reply (%s: %s)", r.Verdict, r.Error)
	}
	return sample{T: t, Offset: *r.OffsetSeconds, Delay: *r.DelaySeconds}, nil
}

// sampleFor takes a measurement every interval for d and returns them; up to
// a quarter of the queries may fail.
func (s *g) sampleFor(d, interval time.Duration) ([]sample, error) {
	var out []sample
	fails := 0
	end := mono() + d.Seconds()
	for next := mono(); next < end; next += interval.Seconds() {
		if w := next - mono(); w > 0 {
			time.Sleep(time.Duration(w * float64(time.Second)))
		}
		sm, err := s.query()
		if err != nil {
			fails++
			s.note("query failed: %v", err)
			continue
		}
		out = append(out, sm)
	}
	if fails > (len(out)+fails)/4 || len(out) < 2 {
		return out, fmt.Errorf("%d of %d queries failed", fails, len(out)+fails)
	}
	return out, nil
}

// fit is a least-squares line through offsets: RatePPM is the guest's rate
// against the host (positive: the guest runs fast), which is minus the
// slope of host - guest; StdErrPPM is the slope's standard error from the
// residuals (what measurement noise alone makes of the rate).
type fit struct {
	RatePPM, StdErrPPM, ResidualRMS, Span float64
	N                                     int
}

func fitRate(ss []sample) (fit, error) {
	n := float64(len(ss))
	if len(ss) < 3 {
		return fit{}, errors.New("fewer than 3 samples")
	}
	t0 := ss[0].T
	var sx, sy, sxx, sxy float64
	for _, s := range ss {
		x := s.T - t0
		sx += x
		sy += s.Offset
		sxx += x * x
		sxy += x * s.Offset
	}
	den := n*sxx - sx*sx
	if den <= 0 {
		return fit{}, errors.New("samples span no time")
	}
	slope := (n*sxy - sx*sy) / den
	icpt := (sy - slope*sx) / n
	var res float64
	for _, s := range ss {
		e := s.Offset - (icpt + slope*(s.T-t0))
		res += e * e
	}
	se := math.Sqrt(res / (n - 2) / (den / n))
	return fit{RatePPM: -slope * 1e6, StdErrPPM: se * 1e6, ResidualRMS: math.Sqrt(res / n), Span: ss[len(ss)-1].T - t0, N: len(ss)}, nil
}

// windowRates fits the rate in consecutive windows of w seconds.
func windowRates(ss []sample, w float64) []fit {
	var fits []fit
	for i := 0; i < len(ss); {
		j := i
		for j < len(ss) && ss[j].T-ss[i].T < w {
			j++
		}
		if f, err := fitRate(ss[i:j]); err == nil && f.Span >= w/2 {
			fits = append(fits, f)
		}
		i = j
	}
	return fits
}

// wander separates the spread of window rates into what measurement noise
// explains (seRMS, the windows' standard errors) and what it does not: the
// emulated clock's own rate changes, sqrt(sd² - seRMS²), 0 if noise
// explains it all.
func wander(fits []fit) (sd, seRMS, wanderPPM float64) {
	rates := make([]float64, len(fits))
	var se2 float64
	for i, f := range fits {
		rates[i] = f.RatePPM
		se2 += f.StdErrPPM * f.StdErrPPM
	}
	_, sd = meanSD(rates)
	if len(fits) == 0 {
		return sd, math.NaN(), math.NaN()
	}
	seRMS = math.Sqrt(se2 / float64(len(fits)))
	return sd, seRMS, math.Sqrt(math.Max(0, sd*sd-seRMS*seRMS))
}

func meanSD(v []float64) (mean, sd float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(v)))
}

// measureRate measures the guest's rate for d in windows of w and records
// it under prefix: <prefix>_rate_ppm and _rate_se_ppm (whole span),
// _window_mean_ppm, _window_sd_ppm, _window_se_ppm, _wander_ppm,
// _window_min_ppm, _window_max_ppm.
func (s *g) measureRate(prefix string, d, w, interval time.Duration) (fit, error) {
	ss, err := s.sampleFor(d, interval)
	s.addSeries(prefix+"_offset", ss, 0)
	if err != nil {
		return fit{}, fmt.Errorf("%s: %w", prefix, err)
	}
	f, err := fitRate(ss)
	if err != nil {
		return fit{}, fmt.Errorf("%s: %w", prefix, err)
	}
	s.rep.Set(prefix+"_rate_ppm", f.RatePPM)
	s.rep.Set(prefix+"_rate_se_ppm", f.StdErrPPM)
	s.rep.Set(prefix+"_fit_residual_rms_seconds", f.ResidualRMS)
	wf := windowRates(ss, w.Seconds())
	rates := make([]float64, len(wf))
	for i, x := range wf {
		rates[i] = x.RatePPM
	}
	mean, _ := meanSD(rates)
	sd, se, wd := wander(wf)
	s.rep.Set(prefix+"_window_mean_ppm", mean)
	s.rep.Set(prefix+"_window_sd_ppm", sd)
	s.rep.Set(prefix+"_window_se_ppm", se)
	s.rep.Set(prefix+"_wander_ppm", wd)
	s.rep.Set(prefix+"_windows", float64(len(wf)))
	if len(rates) > 0 {
		lo, hi := rates[0], rates[0]
		for _, r := range rates {
			lo, hi = math.Min(lo, r), math.Max(hi, r)
		}
		s.rep.Set(prefix+"_window_min_ppm", lo)
		s.rep.Set(prefix+"_window_max_ppm", hi)
	}
	s.note("%s: rate %+.2f ± %.2f ppm over %.0f s; windows of %.0f s: mean %+.2f sd %.2f (noise %.2f, wander %.2f) ppm; residual %.0f µs",
		prefix, f.RatePPM, f.StdErrPPM, f.Span, w.Seconds(), mean, sd, se, wd, f.ResidualRMS*1e6)
	return f, nil
}

func (s *g) addSeries(name string, ss []sample, t0 float64) {
	pts := make([]report.Point, len(ss))
	for i, x := range ss {
		pts[i] = report.Point{T: x.T - t0, V: x.Offset}
	}
	s.rep.Series[name] = append(s.rep.Series[name], pts...)
}

func seconds(v float64, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return time.Duration(v * float64(time.Second))
}
