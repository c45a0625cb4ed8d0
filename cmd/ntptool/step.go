package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/oneshot"
	"github.com/ntptool/ntptool/stephook"
)

// stepFlags are the flags of ntptool step.
type stepFlags struct {
	by, to  string
	dryRun  bool
	config  string
	verbose bool
}

func newStepCmd(host hostClock) *cobra.Command {
	var f stepFlags
	cmd := &cobra.Command{
		Use:   "step --by DURATION | --to TIME [--dry-run] [--config FILE]",
		Short: "Step the clock by hand, safely: with the pre- and post-step hooks that keep DHCP leases alive",
		Long: `step steps the clock once, by exactly DURATION (--by) or to TIME (--to), the
way the daemon steps it: first the pre-step hooks (ntptool's DHCP renewers,
then [hooks] pre_step), whose failure policy ([hooks] on_failure) may cancel
the step; then one clock_adjtime(ADJ_SETOFFSET); then the post-step hooks
(renewers again, the check that every protected address kept a sane
valid_lft, then [hooks] post_step). Use it instead of date -s: a backward step
made without the hooks can leave ISC dhclient's renewal after the kernel's
expiry of the address, and the host drops off the network.

  --by DURATION  "-1h", "+24h", "90s", "-1.5s", or seconds: "-3600"
  --to TIME      RFC 3339 ("2030-06-01T12:00:00Z", "2030-06-01T14:00:00+02:00")
                 or @UNIX-SECONDS ("@1900000000.5"); the step is TIME minus the
                 clock's reading just before it, after the pre-step hooks
  --dry-run      print the step and the hooks it would run (what each renewer
                 would do); change nothing
  --config FILE  [hooks] and [audit] (default /etc/ntptool.toml when it exists,
                 else the built-in defaults: every renewer on, no exec hook)

The step and its hooks are written to the audit journal ([audit] journal;
while the daemon holds it, the daemon records the step as an external one).
If ntptool run is running, its watcher sees the step as made by someone else,
re-bases its estimates, runs the external-step hooks, and then corrects the
clock from its sources again as [step] allows: stop it to keep a time set by
hand. Hooks get NTPTOOL_EVENT, NTPTOOL_STEP_SECONDS, NTPTOOL_OLD_TIME,
NTPTOOL_NEW_TIME and NTPTOOL_REASON ("ntptool step --by -1h").

Needs CAP_SYS_TIME (and, for the renewers, root), except with --dry-run.

Exit status: 0 stepped (or --dry-run), 1 not stepped (no CAP_SYS_TIME, the
pre-step hooks cancelled it, the kernel refused it), 2 usage or configuration
error, 3 stepped but a post-step hook or renewal failed (an address may
expire: see the output).`,
		Example: `  ntptool step --by -1h --dry-run     # what would run, changing nothing
  ntptool step --by +24h --config /etc/ntptool.toml
  ntptool step --to 2030-06-01T12:00:00Z`,
		Args: argsExactly(0, "arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error { return runStep(cmd, host, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.by, "by", "", `step by this duration: "-1h", "+24h", "90s" or seconds "-3600"`)
	fl.StringVar(&f.to, "to", "", `step to this time: RFC 3339 ("2030-06-01T12:00:00Z") or "@UNIX-SECONDS"`)
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the step and the hooks it would run; change nothing")
	fl.StringVar(&f.config, "config", "", "configuration file for [hooks] and [audit] (default /etc/ntptool.toml if it exists)")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log every hook and step to standard error")
	return cmd
}

// parseStepDuration reads --by: a Go duration with an optional sign
// ("-1h", "+24h", "1h30m") or a number of seconds ("-3600", "0.5").
func parseStepDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(secs) || math.IsInf(secs, 0) || math.Abs(secs) > float64(math.MaxInt64/int64(time.Second)) {
			return 0, fmt.Errorf("%q seconds is out of range", s)
		}
		return time.Duration(math.Round(secs * 1e9)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf(`%q is not a duration: want "-1h", "+24h", "90s", "-1.5s" or seconds`, s)
	}
	return d, nil
}

// parseStepTime reads --to: RFC 3339 with a zone, or "@" and Unix
// seconds (fraction allowed), as date -s takes them.
func parseStepTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "@"); ok {
		secs, frac, _ := strings.Cut(rest, ".")
		sec, err := strconv.ParseInt(secs, 10, 64)
		if err != nil || secs == "" || strings.HasPrefix(secs, "+") || len(frac) > 9 || strings.Trim(frac, "0123456789") != "" {
			return time.Time{}, fmt.Errorf("%q: want @UNIX-SECONDS, such as @1900000000 or @1900000000.5", s)
		}
		nsec := int64(0)
		if frac != "" {
			n, _ := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
			nsec = n
			if sec < 0 || strings.HasPrefix(secs, "-") {
				nsec = -nsec
			}
		}
		// Beyond ±292 years from 1970 a time.Duration overflows.
		if sec > math.MaxInt64/int64(time.Second)-1 || sec < -math.MaxInt64/int64(time.Second)+1 {
			return time.Time{}, fmt.Errorf("%q is out of range", s)
		}
		return time.Unix(sec, nsec).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a time: want RFC 3339 with a zone (2030-06-01T12:00:00Z) or @UNIX-SECONDS", s)
	}
	return t, nil
}

func runStep(cmd *cobra.Command, host hostClock, f stepFlags) error {
	changed := cmd.Flags().Changed
	req := oneshot.StepRequest{DryRun: f.dryRun}
	switch {
	case changed("by") && changed("to"):
		return usageError("step: --by and --to: give one of them (see 'ntptool step --help')")
	case changed("by"):
		d, err := parseStepDuration(f.by)
		if err != nil {
			return usageError("step --by: %v", err)
		}
		if d == 0 {
			return usageError("step --by %s: a step of 0 changes nothing", f.by)
		}
		req.By = d
		req.Reason = "ntptool step --by " + strings.TrimSpace(f.by)
	case changed("to"):
		t, err := parseStepTime(f.to)
		if err != nil {
			return usageError("step --to: %v", err)
		}
		req.To = t
		req.Reason = "ntptool step --to " + t.UTC().Format(time.RFC3339Nano)
	default:
		return usageError("step: need --by DURATION or --to TIME (see 'ntptool step --help')")
	}
	if err := req.Check(); err != nil {
		return &exitError{code: exitUsage, err: fmt.Errorf("step: %w", err)}
	}
	cfg, cfgName, err := loadClockConfig(f.config, false)
	if err != nil {
		return err
	}
	log := cmdLogger(cmd.ErrOrStderr(), f.verbose)
	hooks, err := stephook.New(cfg.Hooks, stephook.Options{Logger: log.With("part", "hooks")})
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	opt := oneshot.Options{Hooks: hooks, CanSetTime: host.canSetTime, Logger: log, Wait: host.wait}
	var notes []string
	if f.dryRun {
		opt.Kernel = host.readOnly
	} else {
		// No hook runs for a step the kernel would refuse.
		if host.canSetTime != nil && !host.canSetTime() {
			return clockError("step", "--dry-run", clock.ErrPermission)
		}
		if opt.Kernel, err = host.kernel(); err != nil {
			return &exitError{code: exitFailure, err: err}
		}
		j, note := openJournal(cfg, log)
		if j != nil {
			defer j.Close()
		}
		opt.Journal = journalOf(j)
		if note != "" {
			notes = append(notes, note)
		}
	}
	res, err := oneshot.Step(cmd.Context(), req, opt)
	if errors.Is(err, oneshot.ErrRequest) {
		return &exitError{code: exitUsage, err: fmt.Errorf("step: %w", err)}
	}
	w := cmd.OutOrStdout()
	if host.daemonRunning != nil && host.daemonRunning(cmd.Context(), cfg.Control.Socket) {
		notes = append(notes, daemonNote)
	}
	canSet := host.canSetTime == nil || host.canSetTime()
	writeStep(w, f.dryRun, cfg.Hooks, cfgName, res, err, canSet, notes)
	return clockError("step", "--dry-run", err)
}

// writeStep prints what the step did (or would do) and its hooks.
func writeStep(w io.Writer, dry bool, hooks config.Hooks, cfgName string, res oneshot.StepResult, err error, canSet bool, notes []string) {
	fmt.Fprintf(w, "step: %s s (%v), %s -> %s\n", secondsText(res.Step), res.Step, rfc3339(res.Old), rfc3339(res.New))
	fmt.Fprintf(w, "configuration: %s\n", cfgName)
	if dry || len(res.Pre.Results) > 0 || res.Pre.Verdict == stephook.Abort {
		writeHooks(w, fmt.Sprintf("pre-step hooks (hooks.on_failure = %q):", hooks.OnFailure), res.Pre)
	}
	if dry || res.Stepped {
		writeHooks(w, fmt.Sprintf("post-step hooks (hooks.post_step_on_failure = %q):", hooks.PostStepOnFailure), res.Post)
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	switch {
	case dry:
		has := "this process has it"
		if !canSet {
			has = "this process does not have it"
		}
		fmt.Fprintf(w, "dry run: nothing was changed (the step needs CAP_SYS_TIME: %s)\n", has)
	case res.Stepped:
		fmt.Fprintf(w, "stepped the clock by %s s\n", secondsText(res.Step))
	case err != nil:
		fmt.Fprintln(w, "the clock was not stepped")
	}
}

// secondsText prints a duration in seconds with a sign and 9 decimals,
// exactly (the format of NTPTOOL_STEP_SECONDS): "-3600.000000000".
func secondsText(d time.Duration) string {
	sign, u := "+", uint64(d)
	if d < 0 {
		sign, u = "-", uint64(-d) // -MinInt64 wraps to itself: still right as uint64
	}
	return fmt.Sprintf("%s%d.%09d", sign, u/1e9, u%1e9)
}

// rfc3339 prints a time in UTC with nanoseconds, "-" if unknown.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}
