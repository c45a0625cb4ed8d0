// Command sim runs the seven reference scenarios of SIMULATION.md (the
// TOML files beside this program, 20 seeds each) through ntptool's engine
// and prints our median settle time and RMS offset beside chrony's and
// NTPsec's figures measured under the same model in clknetsim, with the
// ratios. It exits 1 if any scenario misses the goal (ours <= chrony's on
// both).
//
// Usage: go run ./bench/sim [-dir bench/sim]
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/ntptool/ntptool/internal/sim"
)

// reference holds clknetsim's medians over seeds 1-20 (SIMULATION.md).
// NaN: never settled within the run.
type reference struct {
	name                    string
	chronySettle, chronyRMS float64 // s, µs
	ntpsecSettle, ntpsecRMS float64
	what                    string
}

var references = []reference{
	{"A1", 131, 104, 640, 203, "defaults"},
	{"A2", 131, 23.5, 640, 26, "fixed 64 s poll"},
	{"B1", 130, 112, 628, 205, "10 s offset, stepping allowed"},
	{"B2", 250, 114, math.NaN(), math.NaN(), "10 s offset, slew only"},
	{"C0", 131, 104, 642, 200, "no offset, no drift file"},
	{"C1", 0, 108, 0, 168, "no offset, correct drift file"},
	{"D1", 6, 102, 455, 206, "iburst"},
}

func main() {
	dir := flag.String("dir", "bench/sim", "directory of the scenario files")
	flag.Parse()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tsettle<1ms ours\tchrony\tNTPsec\tours/chrony\tRMS µs ours [min..max]\tchrony\tNTPsec\tours/chrony\tmean poll s\tadj/poll\tgoal\t")
	allMet := true
	for _, ref := range references {
		sum, err := evaluate(*dir, ref.name)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		settle, rms := medians(sum)
		met := settle <= ref.chronySettle && rms <= ref.chronyRMS
		allMet = allMet && met
		fmt.Fprintf(tw, "%s\t%s\t%.0f s\t%s\t%s\t%.1f [%.1f..%.1f]\t%.1f\t%s\t%.2f\t%.0f\t%.2f\t%s\t\n",
			ref.name, fmtSettle(settle), ref.chronySettle, fmtSettle(ref.ntpsecSettle), ratio(settle, ref.chronySettle),
			rms, sum.Min.RMSOffsetS*1e6, sum.Max.RMSOffsetS*1e6, ref.chronyRMS, fmtRMS(ref.ntpsecRMS), rms/ref.chronyRMS,
			sum.Median.MeanPollS, sum.Median.ClockAdjustmentsPerPoll, map[bool]string{true: "met", false: "MISSED"}[met])
	}
	tw.Flush()
	fmt.Println("medians over seeds 1-20, 50 000 s each; RMS over 2000-50 000 s; reference figures: clknetsim (SIMULATION.md)")
	if !allMet {
		fmt.Println("goal (ours <= chrony on settle and RMS in every scenario): MISSED")
		os.Exit(1)
	}
	fmt.Println("goal (ours <= chrony on settle and RMS in every scenario): met")
}

// evaluate runs a scenario file over its seeds.
func evaluate(dir, name string) (sim.Summary, error) {
	sc, err := sim.LoadScenario(filepath.Join(dir, name+".toml"))
	if err != nil {
		return sim.Summary{}, err
	}
	results := sc.RunSeeds(sc.Seeds[0], sc.Seeds[1])
	for _, r := range results {
		if r.Err != nil {
			return sim.Summary{}, fmt.Errorf("%s seed %d: %w", name, r.Seed, r.Err)
		}
	}
	return sim.Summarize(results), nil
}

// medians returns the median settle time (s; +Inf for never) and the
// median RMS offset (µs).
func medians(sum sim.Summary) (settle, rmsUS float64) {
	settle = math.Inf(1)
	if sum.Median.Settle1msS != nil {
		settle = *sum.Median.Settle1msS
	}
	return settle, sum.Median.RMSOffsetS * 1e6
}

func fmtSettle(s float64) string {
	if math.IsInf(s, 1) || math.IsNaN(s) {
		return "never"
	}
	return fmt.Sprintf("%.0f s", s)
}

func fmtRMS(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.1f", v)
}

// ratio prints a/b, with 0/0 as 1 (both settle at once).
func ratio(a, b float64) string {
	switch {
	case a == 0 && b == 0:
		return "1.00"
	case b == 0 || math.IsInf(a, 1):
		return "inf"
	}
	return fmt.Sprintf("%.2f", a/b)
}
