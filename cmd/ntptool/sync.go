package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/discipline"
	"github.com/ntptool/ntptool/ntpclient"
	"github.com/ntptool/ntptool/oneshot"
	"github.com/ntptool/ntptool/stephook"
)

// syncFlags are the flags of ntptool sync.
type syncFlags struct {
	once           bool
	config         string
	noClockControl bool
	samples        int
	timeout        time.Duration
	maxWait        time.Duration
	verbose        bool
}

func newSyncCmd(host hostClock) *cobra.Command {
	var f syncFlags
	cmd := &cobra.Command{
		Use:   "sync --once [--config FILE] [--no-clock-control]",
		Short: "Set the clock once from the configured servers and exit (the job of ntpdate / chronyd -q at boot)",
		Long: `sync --once queries the servers and pools of the configuration ([[source]];
a server's first address, up to maxsources addresses of a pool) with
--samples exchanges each (the one with the lowest delay is kept), and
corrects the clock once when a strict majority of the addresses that gave a
valid reply agree: their correctness intervals (root distance, RFC 5905)
share a point, and the correction lies inside the interval of every correct
server that agrees, whatever a lying minority says. Then it exits.

The correction follows [step], as the daemon's first update would: a step
when the offset exceeds step.threshold and steps are allowed (slew_only
false, step.limit not 0), made as 'ntptool step' makes it, between the
pre-step and post-step hooks (DHCP renewals, [hooks]); otherwise a slew at
[clock] max_slew_rate_ppm that sync waits for and ends (at the default
83333 ppm a 1 s offset takes 13 s). If the pre-step hooks cancel the step,
the offset is slewed instead, or, with hooks.on_failure = "hold", the clock
is left alone. A slew longer than --max-wait is not started. SIGINT and
SIGTERM end a slew at once (the clock keeps what was slewed).

--no-clock-control (or [clock] control = false) queries, decides and prints
what it would do, including the hooks it would run, and changes nothing; it
needs no privilege. Otherwise sync needs CAP_SYS_TIME, and refuses to run
while ntptool run answers on the control socket (the daemon owns the clock).

Exit status: 0 the clock was corrected (or, with --no-clock-control, would
be), 1 it was not (no valid reply, no majority, the hooks held it, a slew too
long, no CAP_SYS_TIME, a running daemon, interrupted), 2 usage or
configuration error, 3 stepped but a post-step hook or renewal failed.`,
		Example: `  ntptool sync --once --config /etc/ntptool.toml                      # at boot, before the daemon
  ntptool sync --once --config /etc/chrony/chrony.conf --no-clock-control   # what it would do`,
		Args: argsExactly(0, "arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error { return runSync(cmd, host, f) },
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.once, "once", false, "set the clock once and exit (required: the daemon is 'ntptool run')")
	fl.StringVarP(&f.config, "config", "c", "", "configuration: ntptool TOML, ntp.conf or chrony.conf (default /etc/ntptool.toml)")
	fl.BoolVar(&f.noClockControl, "no-clock-control", false, "print what would be done; change nothing")
	fl.IntVarP(&f.samples, "samples", "n", 4, "exchanges per server address (1-64); the lowest delay wins")
	fl.DurationVarP(&f.timeout, "timeout", "t", 2*time.Second, "wait for each reply")
	fl.DurationVar(&f.maxWait, "max-wait", 2*time.Minute, "longest slew to wait for; a longer one is not started")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log every step to standard error")
	return cmd
}

// syncServers are the configuration's sources as sync queries them.
func syncServers(sources []config.Source) []oneshot.Server {
	var out []oneshot.Server
	for _, s := range sources {
		name, n := s.Server, 1
		if s.Pool != "" {
			name, n = s.Pool, max(s.MaxSources, 1)
		}
		out = append(out, oneshot.Server{Address: net.JoinHostPort(name, strconv.Itoa(s.Port)), MaxAddrs: n})
	}
	return out
}

func runSync(cmd *cobra.Command, host hostClock, f syncFlags) error {
	switch {
	case !f.once:
		return usageError("sync: need --once (the daemon that keeps the clock synchronised is 'ntptool run')")
	case f.samples < 1 || f.samples > 64:
		return usageError("sync --samples %d: want 1-64", f.samples)
	case f.timeout <= 0:
		return usageError("sync --timeout %v: want more than 0", f.timeout)
	case f.maxWait <= 0:
		return usageError("sync --max-wait %v: want more than 0", f.maxWait)
	}
	cfg, cfgName, err := loadClockConfig(f.config, true)
	if err != nil {
		return err
	}
	if len(cfg.Sources) == 0 {
		return usageError("sync: %s has no [[source]]: nothing to query", cfgName)
	}
	log := cmdLogger(cmd.ErrOrStderr(), f.verbose)
	hooks, err := stephook.New(cfg.Hooks, stephook.Options{Logger: log.With("part", "hooks")})
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	noClock := f.noClockControl || !cfg.Clock.Control
	req := oneshot.SyncRequest{
		Servers:      syncServers(cfg.Sources),
		QueryOptions: ntpclient.ServersOptions{Options: ntpclient.Options{Timeout: f.timeout}, Samples: f.samples},
		Policy: discipline.Policy{StepThreshold: cfg.Step.Threshold.Duration, StepLimit: cfg.Step.Limit,
			Panic: cfg.Step.Panic.Duration, SlewOnly: cfg.Step.SlewOnly},
		MaxSlewPPM:     cfg.Clock.MaxSlewRatePPM,
		MaxWait:        f.maxWait,
		NoClockControl: noClock,
		Reason:         "ntptool sync --once",
	}
	opt := oneshot.Options{Hooks: hooks, CanSetTime: host.canSetTime, Logger: log, Wait: host.wait}
	var note string
	if noClock {
		opt.Kernel = host.readOnly
	} else {
		if host.canSetTime != nil && !host.canSetTime() {
			return clockError("sync", "--no-clock-control", clock.ErrPermission)
		}
		if host.daemonRunning != nil && host.daemonRunning(cmd.Context(), cfg.Control.Socket) {
			return &exitError{code: exitFailure, err: fmt.Errorf("sync: ntptool run answers on %s: the daemon owns the clock (stop it first, or use 'ntptool step')", cfg.Control.Socket)}
		}
		if opt.Kernel, err = host.kernel(); err != nil {
			return &exitError{code: exitFailure, err: err}
		}
		j, n := openJournal(cfg, log)
		if j != nil {
			defer j.Close()
		}
		opt.Journal, note = journalOf(j), n
	}
	res, err := oneshot.Sync(cmd.Context(), req, opt)
	writeSync(cmd.OutOrStdout(), cfg.Hooks, noClock, res, err)
	if note != "" {
		fmt.Fprintln(cmd.OutOrStdout(), note)
	}
	return clockError("sync", "--no-clock-control", err)
}

// writeSync prints the servers' replies, the agreement and the correction.
func writeSync(w io.Writer, hooks config.Hooks, dry bool, res oneshot.SyncResult, err error) {
	if len(res.Sources) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVER\tADDRESS\tST\tOFFSET\tDELAY\tROOT-DIST\tROLE")
		for _, s := range res.Sources {
			if r := s.Response; r != nil {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%+.6f\t%.6f\t%.6f\t%s\n", s.Server, ntpclient.FormatAddress(s.Address), r.Stratum,
					r.Offset.Seconds(), r.Delay.Seconds(), r.RootDistance.Seconds(), s.Role)
			} else {
				fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t%s\n", s.Server, ntpclient.FormatAddress(s.Address), s.Role)
			}
		}
		tw.Flush()
		for _, s := range res.Sources {
			if s.Err != nil {
				fmt.Fprintf(w, "# %s (%s): %v\n", s.Server, ntpclient.FormatAddress(s.Address), s.Err)
			}
		}
	}
	if res.Survivors > 0 {
		fmt.Fprintf(w, "offset %+.6f s (±%.6f s) from %d of %d servers (positive: this clock is behind)\n",
			res.Offset.Seconds(), res.Sigma.Seconds(), res.Survivors, res.Voters)
	}
	if len(res.Pre.Results) > 0 || res.Pre.Verdict == stephook.Abort {
		writeHooks(w, fmt.Sprintf("pre-step hooks (hooks.on_failure = %q):", hooks.OnFailure), res.Pre)
	}
	if res.Action == oneshot.ActionStep && (dry || res.Applied) {
		writeHooks(w, fmt.Sprintf("post-step hooks (hooks.post_step_on_failure = %q):", hooks.PostStepOnFailure), res.Post)
	}
	if res.StepCancelled != "" {
		fmt.Fprintf(w, "step cancelled by the pre-step hooks: %s\n", res.StepCancelled)
	}
	switch {
	case errors.Is(err, oneshot.ErrSlewTooLong):
		fmt.Fprintf(w, "not slewed: %+.6f s would take %v\n", res.Correction.Seconds(), res.SlewDuration.Round(time.Second))
	case res.Action == oneshot.ActionStep && dry:
		fmt.Fprintf(w, "would step the clock by %s s\n", secondsText(res.Correction))
	case res.Action == oneshot.ActionStep && res.Applied:
		fmt.Fprintf(w, "stepped the clock by %s s\n", secondsText(res.Correction))
	case res.Action == oneshot.ActionSlew && dry:
		fmt.Fprintf(w, "would slew %+.6f s over about %.1f s\n", res.Correction.Seconds(), res.SlewDuration.Seconds())
	case res.Action == oneshot.ActionSlew && res.Applied:
		fmt.Fprintf(w, "slewed %+.6f s of %+.6f s over %.1f s\n", res.Slewed.Seconds(), res.Correction.Seconds(), res.SlewDuration.Seconds())
	case err != nil:
		fmt.Fprintln(w, "the clock was not changed")
	}
	if dry {
		fmt.Fprintln(w, "no clock control: nothing was changed")
	}
}
