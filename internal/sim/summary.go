package sim

import (
	"math"
	"runtime"
	"slices"
	"sync"
)

// SeedResult is one seed's run.
type SeedResult struct {
	Seed int `json:"seed"`
	Metrics
	Err error `json:"-"`
}

// RunSeeds runs seeds first..last of the scenario, in parallel on the
// machine's CPUs, and returns the results in seed order.
func (sc *Scenario) RunSeeds(first, last int) []SeedResult {
	results := make([]SeedResult, last-first+1)
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				m, err := sc.Run(first+i, nil)
				results[i] = SeedResult{Seed: first + i, Metrics: m, Err: err}
			}
		})
	}
	for i := range results {
		next <- i
	}
	close(next)
	wg.Wait()
	return results
}

// Summary is the median, 99th percentile and range of each metric over
// seeds. A time that never happened counts as +Inf, so a median of
// "never" means most seeds never got there; it prints as "never" and
// encodes as null. P99 is the nearest-rank percentile (the maximum below
// 100 seeds).
type Summary struct {
	Median, P99, Min, Max Metrics
}

// Summarize computes the median, 99th percentile, minimum and maximum of
// every metric.
func Summarize(results []SeedResult) Summary {
	var s Summary
	fields := func(m *Metrics) []**float64 { return []**float64{&m.FirstBelow1msS, &m.Settle1msS} }
	plain := func(m *Metrics) []*float64 {
		return []*float64{&m.MaxAbsOffsetS, &m.RMSOffsetS, &m.MaxAbsOffsetWindowS, &m.RMSFreqErrorPPB, &m.MeanPollS,
			&m.ClockAdjustmentsPerPoll, &m.MaxAbsOffsetSettledS, &m.MeanPollRunS, &m.Within3SigmaFraction, &m.RMSSigmaS}
	}
	stats := func(vals []float64) (med, p99, lo, hi float64) {
		slices.Sort(vals)
		n := len(vals)
		med = vals[n/2]
		if n%2 == 0 {
			med = (vals[n/2-1] + vals[n/2]) / 2
		}
		return med, vals[(99*n+99)/100-1], vals[0], vals[n-1]
	}
	if len(results) == 0 {
		return s
	}
	for f := range fields(&s.Median) {
		var vals []float64
		for i := range results {
			v := math.Inf(1)
			if p := *fields(&results[i].Metrics)[f]; p != nil {
				v = *p
			}
			vals = append(vals, v)
		}
		med, p99, lo, hi := stats(vals)
		*fields(&s.Median)[f], *fields(&s.P99)[f], *fields(&s.Min)[f], *fields(&s.Max)[f] = finite(med), finite(p99), finite(lo), finite(hi)
	}
	for f := range plain(&s.Median) {
		var vals []float64
		for i := range results {
			vals = append(vals, *plain(&results[i].Metrics)[f])
		}
		*plain(&s.Median)[f], *plain(&s.P99)[f], *plain(&s.Min)[f], *plain(&s.Max)[f] = stats(vals)
	}
	return s
}

// finite maps +Inf ("never") back to nil.
func finite(v float64) *float64 {
	if math.IsInf(v, 1) {
		return nil
	}
	return &v
}
