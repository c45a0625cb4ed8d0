package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ntptool/ntptool/control"
	"github.com/spf13/cobra"
)

func newWaitSyncCmd() *cobra.Command {
	var f socketFlags
	var maxOffset, timeout, interval time.Duration
	cmd := &cobra.Command{
		Use:   "wait-sync [--max-offset D] [--timeout T] [--socket PATH] [--config FILE]",
		Short: "Wait until the running daemon has synchronised the clock (for boot ordering)",
		Long: `Wait until the running daemon (ntptool run) reports the clock synchronised,
with its estimated offset within --max-offset, then exit 0: put it before the
services that need the right time (databases, Kerberos, TLS with short-lived
certificates, log shippers).

The daemon's status is asked for at once and then every --interval. A daemon
that is not up yet, or whose socket does not exist yet, is waited for too.
Holdover (synchronised before, no source now) does not count: at boot it means
the sources went away.

  --max-offset D   also require |system time offset| <= D (e.g. 10ms); 0, the
                   default, takes any offset once synchronised
  --timeout T      give up after T (e.g. 2m) with exit status 1; 0, the
                   default, waits for ever (like chronyc waitsync and
                   systemd-time-wait-sync: let the unit's TimeoutStartSec bound it)

Exit status: 0 synchronised within the bound, 1 timed out (or interrupted),
2 usage error. On success one line says the offset and reference.`,
		Example: `  ntptool wait-sync --timeout 2m --max-offset 10ms && start-database

  # systemd: a oneshot unit ordered before time-sync.target
  #   ExecStart=/usr/bin/ntptool wait-sync --max-offset 100ms
  #   TimeoutStartSec=180`,
		Args: argsExactly(0, "arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if maxOffset < 0 || timeout < 0 {
				return usageError("--max-offset and --timeout must not be negative")
			}
			if interval <= 0 {
				return usageError("--interval %v: must be more than 0", interval)
			}
			path, err := f.path()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			ticker := time.NewTicker(interval)
			defer ticker.Stop()
			st, err := control.WaitSync(ctx, control.StatusQuery(path), maxOffset, ticker.C)
			if err != nil {
				what := "interrupted"
				if errors.Is(err, context.DeadlineExceeded) {
					what = fmt.Sprintf("not synchronised within %v", timeout)
				}
				return &exitError{code: exitFailure, err: fmt.Errorf("%s: %s", what, lastReason(err))}
			}
			ref := st.ReferenceName
			if ref == "" {
				ref = st.ReferenceAddress
			}
			fmt.Fprintf(cmd.OutOrStdout(), "synchronised: offset %+.6f s (|offset| %s), reference %s, stratum %d\n",
				st.SystemTimeOffsetSeconds, bound(st.SystemTimeOffsetSeconds, maxOffset), ref, st.Stratum)
			return nil
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.DurationVar(&maxOffset, "max-offset", 0, "require |offset| <= this (e.g. 10ms); 0: any offset")
	fl.DurationVar(&timeout, "timeout", 0, "give up after this long with exit status 1 (e.g. 2m); 0: wait for ever")
	fl.DurationVar(&interval, "interval", time.Second, "how often to ask the daemon")
	return cmd
}

// lastReason strips WaitSync's context error down to why the last check
// failed.
func lastReason(err error) string {
	for _, ctxErr := range []error{context.DeadlineExceeded, context.Canceled} {
		if errors.Is(err, ctxErr) {
			if s, ok := strings.CutPrefix(err.Error(), ctxErr.Error()+": "); ok {
				return s
			}
		}
	}
	return err.Error()
}

func bound(offset float64, max time.Duration) string {
	if max == 0 {
		return "no bound asked"
	}
	return fmt.Sprintf("%.6f s <= %v", math.Abs(offset), max)
}
