package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes shared by the commands. query: 0 at least one valid reply,
// 1 none, 2 usage error. check follows the Nagios plugin convention.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// exitError carries a process exit code out of a command's RunE. A nil err
// means the command already printed what it had to say.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageError marks an error as a usage error (exit code 2).
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// newRootCmd builds the command tree. Each command lives in its own file.
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "ntptool",
		Short: "Time synchronisation toolkit: discipline the clock, query and serve NTP",
		Long: `ntptool disciplines this host's clock from NTP servers (run: the daemon that
replaces ntpd and chronyd, with step hooks that keep DHCP leases alive) and
answers questions about it (status, sources, wait-sync), checks clock offsets
against NTP servers (query, check), serves NTP to a LAN (serve), checks and
imports configurations (config), inspects and renews DHCP leases around clock
steps (lease, renew), steps the clock by hand or sets it once at boot with
those hooks (step, sync --once), prints and verifies the audit journal
(audit), and runs its engine against a simulated clock and network (sim).

Examples:
  ntptool run --config /etc/ntptool.toml   # the daemon (or --config /etc/chrony/chrony.conf)
  ntptool status; ntptool sources -v       # like chronyc tracking / sources -v
  ntptool query pool.ntp.org            # like ntpdate -q / sntp / chronyd -Q
  ntptool check --warn 100ms --crit 1s time1 time2   # Nagios/Icinga plugin
  ntptool serve --listen 127.0.0.1:11123 --local-stratum 2
  ntptool config check /etc/ntptool.toml
  ntptool config import /etc/chrony/chrony.conf > /etc/ntptool.toml
  ntptool sim bench/sim/A1.toml
  ntptool status; ntptool sources -v    # ask the running daemon (chronyc tracking/sources)
  ntptool wait-sync --timeout 2m        # boot ordering: wait until synchronised
  ntptool step --by -1h --dry-run       # a safe manual step: the hooks it would run
  ntptool sync --once --config /etc/ntptool.toml   # like ntpdate / chronyd -q at boot`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.AddCommand(newQueryCmd(), newCheckCmd(), newServeCmd(), newConfigCmd(), newSimCmd())
	root.AddCommand(newLeaseCmd(), newRenewCmd())
	root.AddCommand(newAuditCmd())
	root.AddCommand(devCommands()...)
	root.AddCommand(newRunCmd(), newStatusCmd(), newSourcesCmd(), newWaitSyncCmd())
	root.AddCommand(newStepCmd(realHostClock()), newSyncCmd(realHostClock()))
	root.AddCommand(newHookHelperCmd())
	return root
}

// run executes the command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return execute(ctx, newRootCmd(stdout, stderr), args, stderr)
}

// execute runs root's command line args and returns the exit code (tests
// run command trees whose clock is simulated through it).
func execute(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer) int {
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "ntptool:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "ntptool:", err)
	// cobra reports unknown commands and flags as plain errors.
	if strings.HasPrefix(err.Error(), "unknown ") {
		return exitUsage
	}
	return exitFailure
}

// argsAtLeast is cobra.MinimumNArgs with a usage exit code.
func argsAtLeast(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usageError("%s: need at least %d %s (see '%s --help')", cmd.CommandPath(), n, what, cmd.CommandPath())
		}
		return nil
	}
}

// argsExactly is cobra.ExactArgs with a usage exit code.
func argsExactly(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError("%s: need exactly %d %s (see '%s --help')", cmd.CommandPath(), n, what, cmd.CommandPath())
		}
		return nil
	}
}
