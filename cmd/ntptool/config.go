package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/ntptool/ntptool/config"
)

// newConfigCmd groups the commands about configuration files.
func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check, import or print ntptool configuration files",
		Long: `Commands about ntptool's TOML configuration file (see docs/config.md).

  check    validate a file and list every problem, with its line
  import   convert an ntpd/NTPsec ntp.conf or a chrony.conf
  default  print every key with its default value`,
		Example: `  ntptool config check /etc/ntptool.toml
  ntptool config import /etc/chrony/chrony.conf > /etc/ntptool.toml
  ntptool config default`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newConfigCheckCmd(), newConfigImportCmd(), newConfigDefaultCmd())
	return cmd
}

func newConfigCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a configuration file",
		Long: `check reads FILE ("-" for standard input) as the daemon would and lists every
problem it finds, one per line, as FILE:LINE: KEY: message. Unknown keys are
problems too, so a typo never silently leaves a default in place.

Exit status: 0 if the file is valid (it prints "FILE: OK"), 1 if it has
problems or cannot be read, 2 on a usage error.`,
		Example: `  ntptool config check /etc/ntptool.toml
  ntptool config import /etc/ntp.conf | ntptool config check -`,
		Args: argsExactly(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			var err error
			if name == "-" {
				var data []byte
				if data, err = io.ReadAll(cmd.InOrStdin()); err != nil {
					return &exitError{code: exitFailure, err: fmt.Errorf("read standard input: %w", err)}
				}
				_, err = config.Parse(data, "<stdin>")
			} else {
				_, err = config.Load(name)
			}
			var verr *config.ValidationError
			switch {
			case err == nil:
				fmt.Fprintf(cmd.OutOrStdout(), "%s: OK\n", name)
				return nil
			case errors.As(err, &verr):
				fmt.Fprintln(cmd.OutOrStdout(), verr)
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d problem(s)\n", name, len(verr.Problems))
				return &exitError{code: exitFailure}
			default:
				return &exitError{code: exitFailure, err: err}
			}
		},
	}
}

func newConfigImportCmd() *cobra.Command {
	var from string
	cmd := &cobra.Command{
		Use:   "import [--from ntp|chrony] FILE",
		Short: "Convert an ntp.conf or chrony.conf to an ntptool configuration",
		Long: `import reads an ntpd/NTPsec ntp.conf or a chrony.conf (FILE, or "-" for
standard input) and prints the equivalent ntptool configuration on standard
output. The dialect is detected from the directives unless --from names it.

It maps servers, pools and peers (port, minpoll, maxpoll, iburst, prefer), the
drift file, the step policy (makestep; tinker step and panic), access control
(allow and deny; restrict), rate limiting, local stratum (local; tos orphan),
maxslewrate and chrony's port. Serving is enabled as the original daemon
would serve: ntpd always does, chronyd only with an allow directive.

Whatever it cannot map becomes a comment at the top of the output,
"# not imported (line N): <directive> — <why>", and comments explain the
decisions it made. The count of directives not imported goes to standard
error. Review the result, then check it with "ntptool config check".`,
		Example: `  ntptool config import /etc/chrony/chrony.conf > /etc/ntptool.toml
  ntptool config import --from ntp /etc/ntpsec/ntp.conf > /etc/ntptool.toml
  ntptool config import /etc/ntp.conf | ntptool config check -`,
		Args: argsExactly(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			flavour, err := config.ParseFlavour(from)
			if err != nil {
				return usageError("--from: %v (see '%s --help')", err, cmd.CommandPath())
			}
			name := args[0]
			in := cmd.InOrStdin()
			if name == "-" {
				name = "<stdin>"
			} else {
				f, err := os.Open(name)
				if err != nil {
					return &exitError{code: exitFailure, err: err}
				}
				defer f.Close()
				in = f
			}
			im, err := config.Import(in, name, flavour)
			if err != nil {
				return &exitError{code: exitFailure, err: err}
			}
			fmt.Fprint(cmd.OutOrStdout(), im.TOML())
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: read as %s; %d directive(s) not imported (see the comments)\n",
				name, im.Flavour, len(im.Skipped))
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", `dialect of FILE: "ntp" (ntpd, NTPsec) or "chrony"; detected if not given`)
	return cmd
}

func newConfigDefaultCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "default",
		Short: "Print every configuration key with its default value",
		Long: `default prints a complete configuration file with every key set to its
default value, and an example [[source]], as a starting point.`,
		Example: `  ntptool config default > /etc/ntptool.toml`,
		Args:    argsExactly(0, "arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprint(cmd.OutOrStdout(), config.DefaultTOML())
			return nil
		},
	}
}
