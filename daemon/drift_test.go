package daemon_test

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/ntptool/ntptool/driftfile"
	"github.com/ntptool/ntptool/internal/sim"
)

// The learned frequency is saved hourly, and a restart from the saved
// drift file keeps the clock within 1 ms from the first second (C1).
func TestDriftSavedHourlyAndReused(t *testing.T) {
	sc, err := sim.LoadScenario("../bench/sim/A1.toml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Duration = 3.5 * 3600
	var saved []driftfile.Drift
	sc.SaveDrift = func(d driftfile.Drift) { saved = append(saved, d) }
	if _, err := sc.Run(1, nil); err != nil {
		t.Fatal(err)
	}
	if len(saved) != 3 {
		t.Fatalf("saved %d times in 3.5 h, want 3", len(saved))
	}
	last := saved[len(saved)-1]
	// The clock runs 100 ppm fast: the correction is −100 ppm (± the
	// wander of a few hours, ~0.1 ppm).
	if math.Abs(last.CorrectionPPM+100) > 0.5 || last.SkewPPM <= 0 || last.SkewPPM > 0.5 {
		t.Fatalf("saved %+v, want −100 ± 0.5 ppm with a skew in (0, 0.5]", last)
	}

	// Restart (C0's clock: no initial offset) from the file's content.
	c0, err := os.ReadFile("../bench/sim/C0.toml")
	if err != nil {
		t.Fatal(err)
	}
	withDrift := strings.Replace(string(c0), "[clock]\n", fmt.Sprintf("[clock]\ndrift = %q\n", driftfile.Format(last)), 1)
	restart, err := sim.ParseScenario([]byte(withDrift), "C0 with the saved drift file")
	if err != nil {
		t.Fatal(err)
	}
	restart.Duration = 3000
	m, err := restart.Run(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Settle1msS == nil || *m.Settle1msS != 0 {
		t.Errorf("after a restart with the saved drift file the clock left ±1 ms: settle %v, max %v s", m.Settle1msS, m.MaxAbsOffsetS)
	}
}
