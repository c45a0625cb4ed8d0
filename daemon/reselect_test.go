package daemon_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/internal/sim"
)

// Four equal servers on the default path (100 µs + 100 µs·Exp(1) each
// way), default polling, 20 000 s: the selected source is only what the
// reports (refid, stratum, "source selected") show, and equal sources must
// not take turns at it. Each source's variance dips after its own sample,
// so a rule on the variances alone (the selected one stays while within
// twice the best's) handed the selection on every minute or two on a real
// host (some 50 times in 20 000 s here). After the start-up (while the
// errors are far above the reselection margin), at most twice. And one
// source turned 20 ms off must still lose it.
func TestEqualSourcesDoNotTakeTurns(t *testing.T) {
	const seeds = 20
	const settled = 10 * time.Minute // the start-up's changes, while σ ≫ 100 µs, do not count
	for _, tc := range []struct {
		name   string
		extra  string
		maxSel int // "source selected" records after settled, per seed
		lost   bool
	}{
		{"equal", "", 2, false},
		{"s1 20 ms off at 10 000 s", "[[events]]\nat = 10000\nserver = 1\noffset = 20e-3\n", 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := "name = \"reselect\"\nduration = 20000\n[clock]\noffset = 0.01\nfreq = 1e-4\nwander = 1e-9\n" +
				"[[servers]]\noffset = 0\n[[servers]]\noffset = 0\n[[servers]]\noffset = 0\n[[servers]]\noffset = 0\n" + tc.extra + "\n[client]\nconfig = '''\n"
			for i := 1; i <= 4; i++ {
				text += fmt.Sprintf("[[source]]\nserver = \"s%d\"\niburst = true\n", i)
			}
			text += "'''\n"
			worst := 0
			for seed := 1; seed <= seeds; seed++ {
				sc, err := sim.ParseScenario([]byte(text), "reselect")
				if err != nil {
					t.Fatal(err)
				}
				log := &stamped{}
				sc.WrapKernel = func(k clock.Kernel) clock.Kernel {
					log.k = &watchedKernel{Kernel: k}
					return log.k
				}
				sc.Logger = slog.New(log)
				_, st, err := sc.RunStatus(seed, nil)
				if err != nil {
					t.Fatal(err)
				}
				sel := log.find("source selected")
				if len(sel) == 0 {
					t.Fatalf("seed %d: no source selected", seed)
				}
				changes := 0
				for _, r := range sel {
					if r.mono > settled {
						changes++
					}
				}
				worst = max(worst, changes)
				if changes > tc.maxSel {
					t.Errorf("seed %d: the selection changed %d times after %v, want at most %d", seed, changes, settled, tc.maxSel)
				}
				if tc.lost && st.SelectedID == st.Sources[0].ID {
					t.Errorf("seed %d: s1, 20 ms off, is still selected (%+v)", seed, st.Sources[0])
				}
			}
			t.Logf("%d seeds: at most %d changes of the selected source", seeds, worst)
		})
	}
}
