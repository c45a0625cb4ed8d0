package main

import (
	"testing"

	"github.com/ntptool/ntptool/internal/race"
)

// The acceptance bar of the engine, kept as a regression test: the goals
// and the regression gate of the benchmark (see the command's doc), on
// the seven reference scenarios, with the tails over 1000 seeds for A1
// and A2 (20 under the race detector: make test runs both) and 20 seeds
// for the others.
func TestReferenceScenarios(t *testing.T) {
	base, err := readFigures("figures.json")
	if err != nil {
		t.Fatal(err)
	}
	figs := make(map[string]Figures)
	for _, ref := range references {
		seeds := 20
		for _, name := range tailScenarios {
			if name == ref.name && !race.Enabled {
				seeds = 1000
			}
		}
		f, err := measure(".", ref.name, seeds)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: settle %.0f s, RMS %.1f µs (p99 %.1f, max %.1f over %d seeds), %.0f ppb, mean poll %.0f s",
			ref.name, f.SettleS, f.RMSUS, f.P99RMSUS, f.MaxRMSUS, f.Seeds, f.FreqPPB, f.MeanPollS)
		figs[ref.name] = f
	}
	for _, p := range check(figs, base) {
		t.Error(p)
	}
}
