package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ntptool/ntptool/stephook"
)

// renewFlags are the flags of ntptool renew.
type renewFlags struct {
	config  string
	dryRun  bool
	json    bool
	verbose bool
}

func newRenewCmd() *cobra.Command {
	var f renewFlags
	cmd := &cobra.Command{
		Use:   "renew [--dry-run] [--json] [--config FILE] [IFACE...]",
		Short: "Renew the DHCP leases now, exactly as the daemon's pre-step hook does",
		Long: `renew runs ntptool's built-in DHCP renewers now, on every interface with a DHCP
client (or only on IFACE...), exactly as the daemon does before and after it
steps the clock. Use it after changing the clock by hand, or to test the
hooks. Per client it does:

  dhclient  SIGTERM (never 'dhclient -x', whose script removes the address),
            restart with the same command line, pid and lease files, then set
            the kernel lifetimes from the new lease (ip addr change ...
            valid_lft L preferred_lft L, through netlink): the restarted
            client cannot re-add an address that is still there
  dhcpcd    dhcpcd -N IFACE (-4/-6 as the daemon runs)
  udhcpc    SIGUSR1
  networkd  D-Bus RenewLink, else networkctl renew IFACE
  networkmanager  D-Bus Device.Reapply of the applied profile

and then waits (up to hooks.timeout, 10 s) until each address's valid_lft
shows the renewal. It prints per client: the interfaces, the result, the
valid_lft before and after, and what it did. Only clients of this network
namespace are considered (run it with 'ip netns exec NS' for another).

--dry-run prints what it would do and changes nothing. --json prints
{"results": [...]} with hook, name, client, interfaces, action, outcome (ok,
failed, timeout, skipped, dry-run), error, duration_seconds, output, and
before/after lists of interface, address, valid_lft_seconds,
preferred_lft_seconds (-1: forever). --config reads [hooks] (renewers,
timeout) from FILE.

Exit status: 0 if every renewal succeeded (or --dry-run), 1 if one failed,
timed out, or a requested IFACE has no DHCP client, 2 on a usage error.`,
		Example: `  ntptool renew                 # every DHCP client
  ntptool renew --dry-run eth0  # what it would do on eth0
  ip netns exec NS ntptool renew --json veth0`,
		RunE: func(cmd *cobra.Command, args []string) error { return runRenew(cmd, f, args) },
	}
	cmd.Flags().StringVar(&f.config, "config", "", "read [hooks] from this ntptool configuration file")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "print what would be done; change nothing")
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON (keys above)")
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "log every step to standard error")
	return cmd
}

func runRenew(cmd *cobra.Command, f renewFlags, ifaces []string) error {
	hooks, err := hooksConfig(f.config)
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	r, err := stephook.New(hooks, stephook.Options{Logger: logger})
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	results := r.Renew(cmd.Context(), stephook.RenewRequest{Interfaces: ifaces, DryRun: f.dryRun})
	if f.json {
		if results == nil {
			results = []stephook.Result{}
		}
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"results": results}); err != nil {
			return err
		}
	} else if err := writeRenew(cmd.OutOrStdout(), results); err != nil {
		return err
	}
	for _, res := range results {
		if res.Outcome != stephook.OK && res.Outcome != stephook.DryRun {
			return &exitError{code: exitFailure}
		}
	}
	return nil
}

func writeRenew(w io.Writer, results []stephook.Result) error {
	if len(results) == 0 {
		fmt.Fprintln(w, "no DHCP client found: nothing to renew")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INTERFACE\tCLIENT\tRESULT\tVALID-BEFORE\tVALID-AFTER\tTIME\tACTION")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.3fs\t%s\n", joinOr(r.Interfaces), r.Name, r.Outcome,
			fmtValids(r.Before), fmtValids(r.After), r.Duration.Seconds(), r.Action)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if r.Err != nil {
			fmt.Fprintf(w, "# %s %s: %v\n", joinOr(r.Interfaces), r.Name, r.Err)
		}
	}
	return nil
}

// fmtValids prints the valid_lft of each address: "120s" or
// "120s,3600s".
func fmtValids(ls []stephook.Lifetimes) string {
	var parts []string
	for _, l := range ls {
		parts = append(parts, fmtLifetime(l.Valid))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}
