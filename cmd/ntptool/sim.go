package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/ntptool/ntptool/internal/sim"
	"github.com/spf13/cobra"
)

func newSimCmd() *cobra.Command {
	var seeds, tracePath, logLevel string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "sim SCENARIO.toml [--seeds 1-20] [--json] [--trace FILE]",
		Short: "Run a clock-and-network scenario through the unchanged engine, in simulated time",
		Long: `Simulate a client host (a clock with a frequency error and random-walk wander,
disciplined by ntptool's engine through an emulation of Linux's adjtimex) and
its servers over a network with delay, jitter and loss, for the scenario's
duration, in a fraction of a second per simulated day. Nothing touches this
machine's clock.

Per seed it prints: the first time |offset| < 1 ms, the settle time (after
which |offset| stays < 1 ms), the max |offset|, the max |offset| after
settling (from the first 1000 s stretch within ±1 ms on), the RMS and max
|offset| and the RMS frequency error over 2000-50000 s, the mean poll
interval (chrony's definition over the whole run: (last − first
request)/(requests − 1)), the clock adjustments (adjtimex calls that change
something) per poll, and how honest the engine's error bars are (the share
of seconds whose true offset is within 3σ of its estimate); then the
median, p99 and range over the seeds.

Scenario keys:
  name, seeds = [first, last], duration (s)
  [clock]     offset (s), freq (fraction: 1e-4 = +100 ppm), wander
              (fraction/√s), drift (drift-file content, e.g. "-100.0")
  [network]   base_delay, jitter (s), jitter_asymmetry ([0, 0.5)), loss
  [[servers]] offset (s; a falseticker has a large one), base_delay, jitter
  [[events]]  at (s), server (1-based), and one of: offset = S (the
              server's clock error from then on: a server that turns
              falseticker), down = true (it stops answering: an outage),
              up = true (it answers again)
  [hooks]     seconds (how long the pre-step hooks take: a step is
              committed that long after it is proposed, with the offset
              valid then), fail = true (they fail; the client's
              hooks.on_failure = "abort" cancels the step: slewed instead;
              "hold" cancels it and leaves the clock alone)
  [client]    config (ntptool TOML; its sources name the servers s1, s2, ...)`,
		Example: `  ntptool sim bench/sim/A1.toml
  ntptool sim bench/sim/D1.toml --seeds 1-5 --json | jq .median
  ntptool sim bench/sim/B2.toml --seeds 3 --trace /tmp/b2.trace   # t offset_s freq_err_ppb polls adjustments`,
		Args: argsExactly(1, "SCENARIO.toml"),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := sim.LoadScenario(args[0])
			if err != nil {
				return err
			}
			first, last := sc.Seeds[0], sc.Seeds[1]
			if seeds != "" {
				if first, last, err = parseSeeds(seeds); err != nil {
					return usageError("--seeds: %v", err)
				}
			}
			var results []sim.SeedResult
			if logLevel != "" {
				var level slog.Level
				if err := level.UnmarshalText([]byte(logLevel)); err != nil {
					return usageError("--log-level %q: want debug, info, warn or error", logLevel)
				}
				// The first seed's engine logs; its times are the host's,
				// meaningless here, so they are left out.
				noTime := func(groups []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey && len(groups) == 0 {
						return slog.Attr{}
					}
					return a
				}
				first1 := *sc
				first1.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level, ReplaceAttr: noTime}))
				sc = &first1
			}
			if tracePath != "" || logLevel != "" {
				// The first seed runs here, with its trace or log, and is
				// not run again below.
				m, err := runTraced(sc, first, tracePath)
				if err != nil {
					return err
				}
				results = append(results, sim.SeedResult{Seed: first, Metrics: m})
				first++
				sc.Logger = nil
			}
			if first <= last {
				results = append(results, sc.RunSeeds(first, last)...)
			}
			for _, r := range results {
				if r.Err != nil {
					return fmt.Errorf("seed %d: %w", r.Seed, r.Err)
				}
			}
			first = results[0].Seed
			sum := sim.Summarize(results)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{
					"name": sc.Name, "seeds": results,
					"median": sum.Median, "p99": sum.P99, "min": sum.Min, "max": sum.Max,
				})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "scenario %s (%s): seeds %d-%d, %g s simulated\n", sc.Name, args[0], first, last, sc.Duration)
			return writeSimTable(cmd.OutOrStdout(), results, sum)
		},
	}
	cmd.Flags().StringVar(&seeds, "seeds", "", "seeds to run, N or FIRST-LAST (default: the scenario's)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: per-seed results and median/p99/min/max objects")
	cmd.Flags().StringVar(&tracePath, "trace", "", "write the first seed's per-second trace to FILE")
	cmd.Flags().StringVar(&logLevel, "log-level", "", "print the first seed's engine log at this level (debug: every clock update) on stderr")
	return cmd
}

// runTraced runs one seed with its per-second trace written to path
// (none if path is empty).
func runTraced(sc *sim.Scenario, seed int, path string) (sim.Metrics, error) {
	if path == "" {
		return sc.Run(seed, nil)
	}
	f, err := os.Create(path)
	if err != nil {
		return sim.Metrics{}, err
	}
	w := bufio.NewWriter(f)
	m, err := sc.Run(seed, w)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return sim.Metrics{}, fmt.Errorf("trace %s: %w", path, err)
	}
	return m, nil
}

func parseSeeds(s string) (first, last int, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if first, err = strconv.Atoi(a); err != nil {
		return 0, 0, fmt.Errorf("%q: want N or FIRST-LAST", s)
	}
	last = first
	if isRange {
		if last, err = strconv.Atoi(b); err != nil {
			return 0, 0, fmt.Errorf("%q: want N or FIRST-LAST", s)
		}
	}
	if first < 0 || last < first || last > math.MaxInt32 || last-first >= 10000 {
		return 0, 0, fmt.Errorf("%q: want 0 <= FIRST <= LAST < 2^31, at most 10000 seeds", s)
	}
	return first, last, nil
}

func writeSimTable(w io.Writer, results []sim.SeedResult, sum sim.Summary) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "seed\tfirst<1ms\tsettle<1ms\tmax|off|\tmax settled\tRMS off\tmax|off| win\tRMS freq\tmean poll\tadj/poll\tin 3σ\t")
	row := func(label string, m sim.Metrics) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f ppb\t%.0f s\t%.2f\t%.1f %%\t\n", label,
			fmtOptSeconds(m.FirstBelow1msS), fmtOptSeconds(m.Settle1msS), fmtSmall(m.MaxAbsOffsetS), fmtSmall(m.MaxAbsOffsetSettledS),
			fmtSmall(m.RMSOffsetS), fmtSmall(m.MaxAbsOffsetWindowS), m.RMSFreqErrorPPB, m.MeanPollRunS, m.ClockAdjustmentsPerPoll,
			100*m.Within3SigmaFraction)
	}
	for _, r := range results {
		row(strconv.Itoa(r.Seed), r.Metrics)
	}
	row("median", sum.Median)
	row("p99", sum.P99)
	row("min", sum.Min)
	row("max", sum.Max)
	return tw.Flush()
}

func fmtOptSeconds(s *float64) string {
	if s == nil {
		return "never"
	}
	return fmt.Sprintf("%.0f s", *s)
}

// fmtSmall prints seconds in a readable unit.
func fmtSmall(s float64) string {
	switch {
	case s >= 1:
		return fmt.Sprintf("%.3f s", s)
	case s >= 1e-3:
		return fmt.Sprintf("%.2f ms", s*1e3)
	}
	return fmt.Sprintf("%.1f µs", s*1e6)
}
