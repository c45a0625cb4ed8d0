package main

import (
	"github.com/ntptool/ntptool/control"
	"github.com/spf13/cobra"
)

func newStatusCmd() *cobra.Command {
	var f socketFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json] [--socket PATH] [--config FILE]",
		Short: "Show the running daemon's synchronisation state (like chronyc tracking)",
		Long: `Ask the running daemon (ntptool run) for its synchronisation state through its
control socket, and print it as chronyc tracking does:

  Reference ID     the selected source: its reference ID as the embedded server
                   sends it (8 hex digits), name and address
  Stratum          this host's stratum (the reference's + 1; 16 unsynchronised)
  Ref time         when the clock was last corrected from a source (UTC)
  System time      the clock's estimated offset now: "fast" = ahead of true time
  Last offset      the offset at the last clock update; RMS offset their average
  Frequency        the correction in force; "N ppm slow" means the clock alone
                   loses N µs per second and is sped up by +N ppm
  Residual freq    the frequency error still seen against the reference
  Skew             the frequency estimate's error bound
  Root delay/dispersion   totals to the primary reference (what clients get)
  Update interval  the mean time between clock updates
  Leap status      Normal, Insert second, Delete second or Not synchronised
  Sync state       synchronised, unsynchronised (not yet), or holdover (was
                   synchronised; no source now: running on the learned frequency)
  Clock control    no when the daemon runs with --no-clock-control
  Last error       what stops or degrades synchronisation, if anything
  Next poll        when the next request goes out

The command only reads: any member of the socket's group ([control] group) may
run it. Exit status: 0 answered, 1 the daemon did not answer, 2 usage error.

--json prints {"schema", "time", "status": {...}}; the keys carry their units
(system_time_offset_seconds, frequency_ppm, ...), see docs/control.md.`,
		Example: `  ntptool status
  ntptool status --json | jq .status.system_time_offset_seconds
  ntptool status --config /etc/ntptool.toml     # its [control] socket`,
		Args: argsExactly(0, "arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := f.query(cmd.Context(), control.CommandStatus)
			if err != nil {
				return err
			}
			if r.Status == nil {
				return &exitError{code: exitFailure, err: errNoStatus}
			}
			if asJSON {
				return writeControlJSON(cmd.OutOrStdout(), r)
			}
			return control.RenderStatus(cmd.OutOrStdout(), r.Status)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (keys: docs/control.md)")
	return cmd
}
