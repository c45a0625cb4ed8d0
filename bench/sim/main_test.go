package main

import "testing"

// The acceptance bar of the engine, kept as a regression test: on each of
// SIMULATION.md's seven scenarios (20 seeds, 50 000 s), our median settle
// time and median RMS offset are at or below chrony's.
func TestReferenceScenariosBeatChrony(t *testing.T) {
	for _, ref := range references {
		t.Run(ref.name, func(t *testing.T) {
			sum, err := evaluate(".", ref.name)
			if err != nil {
				t.Fatal(err)
			}
			settle, rms := medians(sum)
			t.Logf("%s: settle %.0f s (chrony %.0f), RMS %.1f µs (chrony %.1f), mean poll %.0f s, %.2f adjustments/poll",
				ref.name, settle, ref.chronySettle, rms, ref.chronyRMS, sum.Median.MeanPollS, sum.Median.ClockAdjustmentsPerPoll)
			if settle > ref.chronySettle || rms > ref.chronyRMS {
				t.Errorf("%s: settle %.0f s, RMS %.1f µs; chrony %.0f s, %.1f µs", ref.name, settle, rms, ref.chronySettle, ref.chronyRMS)
			}
			// Audit friendliness: no per-second adjtimex calls.
			if a := sum.Median.ClockAdjustmentsPerPoll; a > 2.5 {
				t.Errorf("%s: %.2f clock adjustments per poll, want <= 2.5", ref.name, a)
			}
		})
	}
}
