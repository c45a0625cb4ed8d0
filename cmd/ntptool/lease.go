package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/stephook"
)

// leaseFlags are the flags of ntptool lease.
type leaseFlags struct {
	config string
	json   bool
}

func newLeaseCmd() *cobra.Command {
	var f leaseFlags
	cmd := &cobra.Command{
		Use:   "lease [--json] [--config FILE]",
		Short: "Lease doctor: which DHCP client renews each dynamic address, and what clock step it survives",
		Long: `lease lists every dynamic address of this host (this network namespace): one
whose kernel lifetime (valid_lft) runs out unless a DHCP client renews it.
For each it shows the lifetimes, the DHCP client that manages it (dhclient,
dhcpcd, udhcpc, networkd, networkmanager; found from running processes, pid
files, lease files and D-Bus) and the lease from ISC dhclient's lease file
(renew, rebind, expire), and a verdict:

  MAX-BACK / MAX-FWD  the largest backward / forward clock step after which the
                      client still renews before the kernel removes the
                      address ("-" = no limit). The kernel counts valid_lft in
                      monotonic time; dhclient schedules renewals by the wall
                      clock, so a backward step delays them (a forward step
                      makes it renew at once). dhcpcd, udhcpc, networkd and
                      NetworkManager's internal client use monotonic timers:
                      immune.
  AT-RISK             the address expires before its next renewal even without
                      a step: run 'ntptool renew'.
  COVERED             one of ntptool's renewers handles the client, so the
                      daemon's steps renew it before and after (see
                      'ntptool renew' and [hooks] in docs/config.md).

--config reads [hooks] from FILE (renewers switched off are not COVERED).
--json prints {"addresses": [...]} with, per address: interface, address,
family, valid_lft_seconds, preferred_lft_seconds (-1: forever), slaac,
client, pid, backend, lease_file, pid_file, lease (null or address,
lease_time_seconds, preferred_life_seconds, renew, rebind, expire as
RFC 3339 or null) and verdict (max_backward_step_seconds and
max_forward_step_seconds, null for no limit; immune, at_risk, covered, note).

Exit status: 0, or 1 if the addresses cannot be read.`,
		Example: `  ntptool lease
  ntptool lease --json | jq '.addresses[] | select(.verdict.at_risk)'
  ip netns exec NS ntptool lease     # another network namespace`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runLease(cmd, f) },
	}
	cmd.Flags().StringVar(&f.config, "config", "", "read [hooks] from this ntptool configuration file")
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON (keys above)")
	return cmd
}

// hooksConfig returns [hooks] from path, or the defaults when path is "".
func hooksConfig(path string) (config.Hooks, error) {
	if path == "" {
		return config.Default().Hooks, nil
	}
	c, err := config.Load(path)
	if err != nil {
		return config.Hooks{}, err
	}
	return c.Hooks, nil
}

func runLease(cmd *cobra.Command, f leaseFlags) error {
	hooks, err := hooksConfig(f.config)
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	reports, err := stephook.Leases(cmd.Context(), hooks, stephook.Options{Logger: logger})
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	if f.json {
		if reports == nil {
			reports = []stephook.AddrReport{}
		}
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"addresses": reports})
	}
	return writeLeases(cmd.OutOrStdout(), reports)
}

func writeLeases(w io.Writer, reports []stephook.AddrReport) error {
	if len(reports) == 0 {
		fmt.Fprintln(w, "no dynamic address: nothing a clock step can expire")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INTERFACE\tADDRESS\tVALID\tPREFERRED\tCLIENT\tLEASE-TIME\tRENEW\tEXPIRE\tMAX-BACK\tMAX-FWD\tAT-RISK\tCOVERED")
	for _, r := range reports {
		client := string(r.Client)
		switch {
		case r.SLAAC:
			client = "slaac"
		case client == "":
			client = "none"
		case r.PID != 0:
			client = fmt.Sprintf("%s[%d]", client, r.PID)
		}
		leaseTime, renew, expire := "-", "-", "-"
		if l := r.Lease; l != nil {
			leaseTime = fmtLifetime(l.LeaseTime)
			renew, expire = fmtDate(l.Renew), fmtDate(l.Expire)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Interface, r.Address,
			fmtLifetime(r.Valid), fmtLifetime(r.Preferred), client, leaseTime, renew, expire,
			fmtLimit(r.Margin.MaxBackward), fmtLimit(r.Margin.MaxForward), yesNo(r.Margin.AtRisk), yesNo(r.Covered))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range reports {
		extra := ""
		if r.LeaseFile != "" {
			extra = " (lease file " + r.LeaseFile + ")"
		}
		fmt.Fprintf(w, "# %s %s: %s%s\n", r.Interface, r.Address, r.Margin.Note, extra)
	}
	return nil
}

func fmtLifetime(d time.Duration) string {
	if d == stephook.Forever {
		return "forever"
	}
	return fmt.Sprintf("%ds", int64(d/time.Second))
}

func fmtLimit(d *time.Duration) string {
	if d == nil {
		return "-"
	}
	return fmtLifetime(*d)
}

func fmtDate(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// joinOr joins words, "-" when there are none.
func joinOr(words []string) string {
	if len(words) == 0 {
		return "-"
	}
	return strings.Join(words, ",")
}
