package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/ntptool/ntptool/ntpclient"
	"github.com/spf13/cobra"
)

// Nagios plugin exit codes.
const (
	nagiosOK       = 0
	nagiosWarning  = 1
	nagiosCritical = 2
	nagiosUnknown  = 3
)

// nagiosState names a Nagios exit code.
func nagiosState(code int) string {
	return [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}[code]
}

func newCheckCmd() *cobra.Command {
	var flags queryFlags
	var warn, crit time.Duration
	cmd := &cobra.Command{
		Use:   "check --warn DURATION --crit DURATION [flags] SERVER...",
		Short: "Monitoring plugin: check the clock offset against NTP servers (Nagios/Icinga exit codes)",
		Long: `Query every SERVER (as "ntptool query" does) and compare this host's offset with
the thresholds. The offset used is that of the valid reply with the smallest
root distance, i.e. the most trustworthy one.

Prints one line, "NTP STATE: summary|perfdata", and exits with the Nagios
plugin codes:
  0 OK        |offset| < --warn
  1 WARNING   --warn <= |offset| < --crit
  2 CRITICAL  |offset| >= --crit, or no server gave a valid reply
  3 UNKNOWN   bad flags or arguments

Perfdata: offset=Ss;WARN;CRIT; delay=Ss root_distance=Ss stratum=N valid=N servers=N`,
		Example: `  ntptool check --warn 100ms --crit 1s time1.example.net time2.example.net
  # in an Icinga CheckCommand:
  #   command = [ "/usr/local/bin/ntptool", "check", "--warn", "$ntp_warn$", "--crit", "$ntp_crit$", "$ntp_server$" ]`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return checkUnknown(cmd, "check needs at least one SERVER")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opt, err := flags.options()
			if err == nil {
				err = checkThresholds(warn, crit)
			}
			if err != nil {
				return checkUnknown(cmd, err.Error())
			}
			results := ntpclient.QueryServers(cmd.Context(), args, opt)
			code, line := checkVerdict(results, warn, crit)
			fmt.Fprintln(cmd.OutOrStdout(), line)
			if code != nagiosOK {
				return &exitError{code: code}
			}
			return nil
		},
	}
	flags.register(cmd)
	cmd.Flags().DurationVarP(&warn, "warn", "w", 100*time.Millisecond, "WARNING when |offset| is at least this")
	cmd.Flags().DurationVarP(&crit, "crit", "c", time.Second, "CRITICAL when |offset| is at least this")
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return checkUnknown(c, fmt.Sprintf("%v (see %s --help)", err, c.CommandPath()))
	})
	return cmd
}

// checkUnknown reports a usage problem the way monitoring reads it: one
// line on standard output and exit status 3.
func checkUnknown(cmd *cobra.Command, msg string) error {
	fmt.Fprintln(cmd.OutOrStdout(), "NTP UNKNOWN:", msg)
	return &exitError{code: nagiosUnknown}
}

func checkThresholds(warn, crit time.Duration) error {
	switch {
	case warn <= 0 || crit <= 0:
		return fmt.Errorf("--warn and --crit must be positive")
	case warn > crit:
		return fmt.Errorf("--warn %v is larger than --crit %v", warn, crit)
	}
	return nil
}

// checkVerdict turns the query results into the plugin's exit code and
// output line.
func checkVerdict(results []ntpclient.Result, warn, crit time.Duration) (int, string) {
	var best *ntpclient.Result
	var reasons []string
	for i := range results {
		r := &results[i]
		if r.Err != nil {
			reasons = append(reasons, fmt.Sprintf("%s %s", r.Server, ntpclient.Verdict(r.Err)))
			continue
		}
		if best == nil || r.Response.RootDistance < best.Response.RootDistance {
			best = r
		}
	}
	if best == nil {
		return nagiosCritical, fmt.Sprintf("NTP CRITICAL: no valid reply from %d server address(es): %s|valid=0 servers=%d",
			len(results), strings.Join(reasons, ", "), len(results))
	}
	resp := best.Response
	code := nagiosOK
	switch off := resp.Offset.Abs(); {
	case off >= crit:
		code = nagiosCritical
	case off >= warn:
		code = nagiosWarning
	}
	valid := len(results) - len(reasons)
	return code, fmt.Sprintf("NTP %s: offset %+.6f s from %s (stratum %d), %d of %d server address(es) valid"+
		"|offset=%.6fs;%.6f;%.6f; delay=%.6fs root_distance=%.6fs stratum=%d valid=%d servers=%d",
		nagiosState(code), resp.Offset.Seconds(), best.Server, resp.Stratum, valid, len(results),
		resp.Offset.Seconds(), warn.Seconds(), crit.Seconds(), resp.Delay.Seconds(), resp.RootDistance.Seconds(),
		resp.Stratum, valid, len(results))
}
