// Command e2e is the end-to-end test harness of ntptool on a real kernel
// clock: it boots Debian's stock kernel in QEMU (TCG) with an initramfs
// whose init (e2e/guest) runs one scenario per boot against `ntptool serve`
// on the host's loopback, collects the guest's framed report from the
// serial console, judges it, and prints a table: scenario, expectation,
// measured value, PASS/FAIL. It exits 1 if any expectation failed.
//
// Nothing here changes the host's clock: the only clock that is changed is
// the guest's own, by the guest init, which proves it is inside the VM
// first (package e2e/guard). The guest's one network peer is the host's
// 127.0.0.1, through QEMU's user-mode network.
//
// Usage (see docs/e2e.md):
//
//	go run ./e2e [-scenarios a,b] [-pending] [-quick] [-v] [-list]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ntptool/ntptool/e2e/report"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := mainErr(ctx, os.Args[1:], os.Stdout)
	stop()
	os.Exit(code)
}

type flags struct {
	scenarios string
	pending   bool
	quick     bool
	verbose   bool
	list      bool
	cache     string
}

func mainErr(ctx context.Context, args []string, stdout io.Writer) int {
	var f flags
	fs := flag.NewFlagSet("e2e", flag.ContinueOnError)
	fs.StringVar(&f.scenarios, "scenarios", "", "comma-separated scenarios to run (default: every one not pending)")
	fs.BoolVar(&f.pending, "pending", false, "also run the scenarios that wait for unreleased commands (ntptool run, step, renew)")
	fs.BoolVar(&f.quick, "quick", false, "shorter runs (to try the harness out; the figures are less meaningful)")
	fs.BoolVar(&f.verbose, "v", false, "echo the guest's serial console")
	fs.BoolVar(&f.list, "list", false, "list the scenarios and exit")
	fs.StringVar(&f.cache, "cache", "", "cache directory (default <repo>/.cache/e2e)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sel, err := selectScenarios(f.scenarios, f.pending)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 2
	}
	if f.list {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SCENARIO\tISSUE 10\tSTATE")
		for _, s := range scenarioList {
			st := "runs"
			if s.Pending != "" {
				st = "skipped: " + s.Pending + " (-pending runs it)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.Issue, st)
		}
		tw.Flush()
		return 0
	}
	h, err := newHarness(f, stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer h.close()
	rows, err := h.runAll(ctx, sel)
	printTable(stdout, rows)
	printComparison(stdout, h.reports)
	printSummary(stdout, rows)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	for _, r := range rows {
		if r.Status == fail {
			return 1
		}
	}
	return 0
}

// selectScenarios returns the scenarios to run in order; those not run are
// returned too, with Pending set, for the table's SKIP rows.
func selectScenarios(names string, pending bool) ([]scenario, error) {
	byName := map[string]scenario{}
	for _, s := range scenarioList {
		byName[s.Name] = s
	}
	if names == "" {
		out := make([]scenario, 0, len(scenarioList))
		for _, s := range scenarioList {
			if pending {
				s.Pending = ""
			}
			out = append(out, s)
		}
		return out, nil
	}
	var out []scenario
	for _, n := range strings.Split(names, ",") {
		s, ok := byName[strings.TrimSpace(n)]
		if !ok {
			return nil, fmt.Errorf("unknown scenario %q (see -list)", n)
		}
		if pending {
			s.Pending = ""
		}
		out = append(out, s)
	}
	return out, nil
}

// harness holds what every boot shares.
type harness struct {
	f       flags
	out     io.Writer
	e       *env
	k       *kernel
	port    int
	server  *hostServer
	base    string            // base initramfs archive
	bundles map[string]string // bundle name -> archive
	reports map[string]*report.Report
	outDir  string
}

func newHarness(f flags, out io.Writer) (*harness, error) {
	repo, err := repoRoot()
	if err != nil {
		return nil, err
	}
	cache := f.cache
	if cache == "" {
		cache = filepath.Join(repo, ".cache", "e2e")
	}
	h := &harness{f: f, out: out, bundles: map[string]string{}, reports: map[string]*report.Report{}}
	h.e = &env{repo: repo, cache: cache, logf: func(format string, args ...any) {
		fmt.Fprintf(out, "e2e: "+format+"\n", args...)
	}}
	h.outDir = h.e.path("out")
	if err := os.MkdirAll(h.outDir, 0o755); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *harness) close() {
	if h.server != nil {
		h.server.stop()
	}
}

func (h *harness) prepare(ctx context.Context, sel []scenario) error {
	t := time.Now()
	if err := h.e.ensurePackages(); err != nil {
		return err
	}
	k, err := h.e.ensureKernel()
	if err != nil {
		return err
	}
	h.k = k
	bins, err := h.e.buildBinaries()
	if err != nil {
		return err
	}
	if h.base, err = h.e.baseArchive(k, bins); err != nil {
		return err
	}
	need := map[string]bool{}
	for _, s := range sel {
		if s.Pending == "" {
			for _, b := range s.Bundles {
				need[b] = true
			}
		}
	}
	for b := range need {
		if h.bundles[b], err = h.e.bundleArchive(b); err != nil {
			return err
		}
	}
	if h.server, err = startHostServer(ctx, bins.ntptool, filepath.Join(h.outDir, "serve.log")); err != nil {
		return err
	}
	h.port = h.server.port
	h.e.logf("ready in %.1f s: kernel %s, host server 127.0.0.1:%d (guest: 10.0.2.2:%d)", time.Since(t).Seconds(), k.Version, h.port, h.port)
	return nil
}

func (h *harness) runAll(ctx context.Context, sel []scenario) ([]check, error) {
	var rows []check
	runnable := 0
	for _, s := range sel {
		if s.Pending == "" {
			runnable++
		}
	}
	if runnable > 0 {
		if err := h.prepare(ctx, sel); err != nil {
			return rows, err
		}
	}
	for _, s := range sel {
		if s.Pending != "" {
			rows = append(rows, check{Scenario: s.Name, Expect: "issue 10: " + s.Issue, Measured: "-", Status: skip + " (" + s.Pending + ")"})
			continue
		}
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
		rows = append(rows, h.runOne(ctx, s)...)
	}
	return rows, nil
}

// runOne boots the guest for one scenario and judges its report.
func (h *harness) runOne(ctx context.Context, s scenario) []check {
	sp := s.Spec(options{Port: h.port, Quick: h.f.quick})
	b := budget(sp)
	h.e.logf("scenario %s (issue 10: %s): booting, at most %v", s.Name, s.Issue, b)
	fail1 := func(msg string) []check {
		return []check{{Scenario: s.Name, Expect: "guest ran the scenario", Measured: msg, Status: fail}}
	}
	initrd, err := h.e.scenarioInitrd(h.base, h.bundles, s, sp)
	if err != nil {
		return fail1(err.Error())
	}
	var verbose io.Writer
	if h.f.verbose {
		verbose = h.out
	}
	console := filepath.Join(h.outDir, s.Name+".console.log")
	res, err := boot{Kernel: h.k.Vmlinux, Initrd: initrd, Budget: b, Console: console, Verbose: verbose}.run(ctx)
	if err != nil {
		return fail1(err.Error())
	}
	rep, err := report.Extract(res.Log)
	if err != nil {
		why := err.Error()
		if res.TimedOut {
			why = fmt.Sprintf("timed out after %v: %v", b, err)
		}
		fmt.Fprintf(h.out, "e2e: %s: %s; last console lines (%s):\n%s\n", s.Name, why, console, indent(consoleTail(res.Log, 40)))
		return fail1(why)
	}
	h.reports[s.Name] = rep
	if js, err := json.MarshalIndent(rep, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(h.outDir, s.Name+".report.json"), js, 0o644)
	}
	rows := []check{
		{Expect: "boot to init", Measured: fmt.Sprintf("%.2f s (whole boot %.1f s wall)", rep.Metrics["boot_to_init_seconds"], res.Wall.Seconds()), Status: info},
	}
	if rep.Error != "" {
		fmt.Fprintf(h.out, "e2e: %s: the guest failed: %s\nlast console lines (%s):\n%s\n", s.Name, rep.Error, console, indent(consoleTail(res.Log, 40)))
		if dl := rep.Facts["daemon_log"]; dl != "" {
			fmt.Fprintf(h.out, "daemon log tail:\n%s\n", indent(tailLines(dl, 20)))
		}
		rows = append(rows, check{Expect: "guest ran the scenario", Measured: firstLine(rep.Error), Status: fail})
	} else {
		rows = append(rows, s.Expect(rep, sp)...)
	}
	for i := range rows {
		rows[i].Scenario = s.Name
	}
	for _, r := range rows {
		if r.Status == fail {
			fmt.Fprintf(h.out, "e2e: %s FAILED: %s: %s (console: %s)\n", s.Name, r.Expect, r.Measured, console)
		}
	}
	return rows
}

// consoleTail is the end of a console log without the report frame's
// base64 (the report's content is printed apart).
func consoleTail(log []byte, n int) string {
	var keep []string
	for _, l := range strings.Split(string(log), "\n") {
		if !isFrameLine(l) {
			keep = append(keep, l)
		}
	}
	return tailLines(strings.Join(keep, "\n"), n)
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func printTable(w io.Writer, rows []check) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tEXPECTATION\tMEASURED\tRESULT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Scenario, r.Expect, r.Measured, r.Status)
	}
	tw.Flush()
}

// printSummary ends the output with one "N passed, N failed" line, which CI
// reads as the test count (INFO rows are figures, not tests).
func printSummary(w io.Writer, rows []check) {
	var p, f, s int
	for _, r := range rows {
		switch {
		case r.Status == pass:
			p++
		case r.Status == fail:
			f++
		case strings.HasPrefix(r.Status, skip):
			s++
		}
	}
	fmt.Fprintf(w, "\ne2e: %d passed, %d failed, %d skipped\n", p, f, s)
}

// printComparison is scenario 5's table: chrony and ntptool side by side.
func printComparison(w io.Writer, reps map[string]*report.Report) {
	c, n := reps["chrony"], reps["ntptool-vs-chrony"]
	if c == nil && n == nil {
		return
	}
	cell := func(r *report.Report, name, format string, scale float64) string {
		if r == nil {
			return "(not run)"
		}
		v, ok := r.Metric(name)
		if !ok {
			return "-"
		}
		return fmt.Sprintf(format, v*scale)
	}
	fmt.Fprintln(w, "\nScenario 5: same guest set-up (+30 s, +200 ppm), same server, minpoll = maxpoll = 4")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tchronyd\tntptool run")
	for _, f := range []struct {
		label, name, format string
		scale               float64
	}{
		{"step made at", "first_step_seconds", "%.1f s", 1},
		{"time to |offset| < 5 ms", "time_to_5ms_seconds", "%.1f s", 1},
		{"settled < 5 ms from", "settle_5ms_seconds", "%.1f s", 1},
		{"samples ≥ 5 ms after first below", "samples_over_5ms_after_first", "%.0f", 1},
		{"offset RMS, last window", "rms_offset_seconds", "%.3f ms", 1e3},
		{"max |offset|, last window", "max_abs_offset_window_seconds", "%.3f ms", 1e3},
		{"frequency error", "freq_error_ppm", "%+.2f ppm", 1},
		{"residual rate, last window", "residual_rate_ppm", "%+.2f ppm", 1},
		{"steps", "steps", "%.0f", 1},
		{"drift file's frequency error", "drift_freq_error_ppm", "%+.2f ppm", 1},
		{"adjtimex writes per poll", "adjtimex_writes_per_poll", "%.2f", 1},
		{"adjtimex reads per poll", "adjtimex_reads_per_poll", "%.2f", 1},
		{"guest's own rate (free run)", "free_rate_ppm", "%+.2f ppm", 1},
	} {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.label, cell(c, f.name, f.format, f.scale), cell(n, f.name, f.format, f.scale))
	}
	tw.Flush()
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found: run from the repository")
		}
		dir = parent
	}
}
