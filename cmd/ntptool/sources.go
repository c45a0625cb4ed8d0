package main

import (
	"github.com/ntptool/ntptool/control"
	"github.com/spf13/cobra"
)

func newSourcesCmd() *cobra.Command {
	var f socketFlags
	var asJSON, verbose bool
	cmd := &cobra.Command{
		Use:   "sources [-v] [--json] [--socket PATH] [--config FILE]",
		Short: "List the running daemon's sources (like chronyc sources / ntpq -p)",
		Long: `Ask the running daemon (ntptool run) for its sources through its control
socket and print one line each, as chronyc sources and ntpq -p do. -v explains
the columns first.

The first column is the tally:
  *  selected: the reference, the best of the combined sources
  +  combined with it into the clock's estimate
  -  a truechimer left out of the combination
  x  falseticker: outside the interval the majority agrees on, never followed
  ?  unreachable: no usable reply in the last 8 polls (or none yet)
  ~  too variable to use (jitter or delay)

Reach is the register of the last 8 polls in octal, as ntpq prints it: 377 is
eight answers, 0 none. Offsets are this clock minus the source's (+: this clock
is ahead, chronyc's sign; ntpq's is the opposite).

The command only reads: any member of the socket's group may run it. Exit
status: 0 answered, 1 the daemon did not answer, 2 usage error.

--json prints {"schema", "time", "sources": [...]}: per source state, tally,
name, address, pool, stratum, reach, reach_octal, poll_log2 and last_sample
{age_seconds, offset_seconds, measured_offset_seconds, error_seconds,
delay_seconds, jitter_seconds} (absent before a sample); see docs/control.md.`,
		Example: `  ntptool sources -v
  ntptool sources --json | jq -r '.sources[] | select(.state == "falseticker") | .address'`,
		Args: argsExactly(0, "arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := f.query(cmd.Context(), control.CommandSources)
			if err != nil {
				return err
			}
			if asJSON {
				if r.Sources == nil {
					r.Sources = []control.Source{}
				}
				return writeControlJSON(cmd.OutOrStdout(), r)
			}
			return control.RenderSources(cmd.OutOrStdout(), r.Sources, verbose)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (keys: docs/control.md)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "explain the columns")
	return cmd
}
