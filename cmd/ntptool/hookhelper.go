package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/ntptool/ntptool/hookproxy"
	"github.com/ntptool/ntptool/internal/exepages"
)

// hookHelperCmd is the name of the hidden command ntptool run starts as
// its privileged hook helper (package hookproxy).
const hookHelperCmd = "hook-helper"

// newHookHelperCmd is the hook helper: started by ntptool run (as root,
// before it switches to [run] user) with its socket on fd 3; it runs the
// step hooks the daemon asks for. Not for people: hidden.
func newHookHelperCmd() *cobra.Command {
	var logFormat, logLevel string
	cmd := &cobra.Command{
		Use:    hookHelperCmd,
		Short:  "Run the daemon's step hooks with privileges (started by ntptool run)",
		Hidden: true,
		Args:   argsExactly(0, "arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			handler, err := logHandler(cmd.ErrOrStderr(), logFormat, logLevel)
			if err != nil {
				return err
			}
			log := slog.New(handler).With("part", "hook-helper")
			// It waits for requests for the daemon's lifetime: it keeps
			// only the pages of the binary it uses (docs/footprint.md).
			if _, err := exepages.Release(); err != nil {
				log.Debug("start-up pages kept", "err", err)
			}
			if err := hookproxy.Main(log); err != nil {
				return &exitError{code: exitFailure, err: err}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "text or json")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
